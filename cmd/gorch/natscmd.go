package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
)

// defaultListen is where `gorch nats` listens unless told otherwise:
// loopback, so an unconfigured server is never reachable from another
// machine.
const defaultListen = "127.0.0.1:4222"

// startNATS starts the loopback, no-auth embedded server of `gorch up`
// with JetStream's file store in storeDir on 127.0.0.1:port (0: a free
// port). flag names the port flag in errors.
func startNATS(storeDir string, port int, flag string) (*server.Server, error) {
	if port < 0 || port > 65535 {
		return nil, errs.New(errs.Config, "nats", "%s %d: want a port from 0 (any free port) to 65535", flag, port)
	}
	opts := &server.Options{JetStream: true, StoreDir: storeDir, Host: "127.0.0.1", Port: port, NoLog: true}
	return serveNATS(opts, flag, nil)
}

// serveNATS starts the embedded server with opts, after making sure its
// port is free (nats-server only logs a port it cannot bind). Port 0 is
// any free port.
func serveNATS(opts *server.Options, flag string, log server.Logger) (*server.Server, error) {
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	if opts.Port != server.RANDOM_PORT {
		addr := net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, errs.New(errs.Cluster, "nats", "%s is taken (another gorch up or NATS server?) or cannot be bound; pick another with %s, or port 0 for any free port", addr, flag)
		}
		l.Close()
	}
	return cluster.StartServer(opts, log)
}

// natsCmdOptions are the flags of `gorch nats`.
type natsCmdOptions struct {
	listen, jetstreamDir, config string
	tlsCert, tlsKey, tlsCA       string
	noAuth, debug                bool
}

// newNATSCmd is `gorch nats`: the embedded NATS server alone, for running
// the services as separate processes, on one machine or several.
func newNATSCmd() *cobra.Command {
	var o natsCmdOptions
	cmd := &cobra.Command{
		Use:   "nats",
		Short: "Run the embedded NATS server (JetStream) alone",
		Long: `Run the NATS server that 'gorch up' embeds, with JetStream's file store in
--jetstream-dir (default <data-dir>/nats), until SIGINT or SIGTERM. Point
'gorch setup', 'gorch coordinator', 'gorch worker' and 'gorch collector' at
it with --nats. It logs a "ready" line with its URL to stderr.

By default it listens on 127.0.0.1 only, without authentication. To serve
other machines, give it the configuration 'gorch auth init' writes
(--config: operator, accounts, listen address, JetStream store, TLS); any
nats-server configuration works. --listen and --jetstream-dir override the
configuration's values. A non-loopback --listen without authentication is
refused unless --no-auth says that is meant.`,
		Example: `  gorch nats                                        # 127.0.0.1:4222, no auth
  gorch nats --listen 127.0.0.1:0                   # any free port; the ready line names it
  gorch nats --config gorch-auth/nats-server.conf   # a deployment from gorch auth init
  gorch nats --config gorch-auth/nats-server.conf --listen 0.0.0.0:4222 \
    --tls-cert server.pem --tls-key server-key.pem`,
		Args: cobra.NoArgs,
	}
	fl := cmd.Flags()
	addDataDirFlag(cmd)
	fl.StringVar(&o.listen, "listen", defaultListen, "host:port to listen on (port 0: any free port)")
	fl.StringVar(&o.jetstreamDir, "jetstream-dir", "", "JetStream store directory (default <data-dir>/nats, or the --config's)")
	fl.StringVar(&o.config, "config", "", "nats-server configuration file (e.g. the one gorch auth init writes)")
	fl.StringVar(&o.tlsCert, "tls-cert", "", "server certificate: serve TLS only (with --tls-key)")
	fl.StringVar(&o.tlsKey, "tls-key", "", "server key (with --tls-cert)")
	fl.StringVar(&o.tlsCA, "tls-ca", "", "CA to verify client certificates with: clients must present one (mutual TLS)")
	fl.BoolVar(&o.noAuth, "no-auth", false, "allow a non-loopback --listen without authentication")
	fl.BoolVar(&o.debug, "debug", false, "log the server's debug messages")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		level := slog.LevelInfo
		if o.debug {
			level = slog.LevelDebug
		}
		log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
		// SIGHUP reloads the configuration. Caught from before the server
		// listens: a client may send it as soon as it can connect, and
		// uncaught it would end the process.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		opts, err := o.serverOptions(cmd)
		if err != nil {
			return err
		}
		ns, err := serveNATS(opts, "--listen", serverLog{log.With("component", "nats-server")})
		if err != nil {
			return err
		}
		log.Info("ready", "nats", ns.ClientURL(), "jetstream_dir", opts.StoreDir, "auth", authMode(opts), "tls", opts.TLS)
		for done := false; !done; {
			select {
			case <-cmd.Context().Done():
				done = true
			case <-hup:
				o.reload(cmd, ns, log)
			}
		}
		ns.Shutdown()
		ns.WaitForShutdown()
		log.Info("stopped")
		return nil
	}
	return cmd
}

// reload applies the configuration again (SIGHUP), as nats-server does:
// new account JWTs (a worker revoked by gorch auth revoke-worker), users,
// permissions and TLS files take effect; the listen address stays. A
// configuration that does not load is logged and the running one kept.
func (o natsCmdOptions) reload(cmd *cobra.Command, ns *server.Server, log *slog.Logger) {
	opts, err := o.serverOptions(cmd)
	if err == nil {
		if addr, ok := ns.Addr().(*net.TCPAddr); ok {
			opts.Port = addr.Port // a --listen port 0 stays the port it got
		}
		err = ns.ReloadOptions(opts)
	}
	if err != nil {
		log.Error("configuration not reloaded; the running one stays", "err", err)
		return
	}
	log.Info("configuration reloaded", "config", o.config)
}

// serverOptions builds the server's options from --config and the flags,
// and refuses a configuration that would serve the network without
// authentication by accident.
func (o natsCmdOptions) serverOptions(cmd *cobra.Command) (*server.Options, error) {
	const op = "nats"
	opts := &server.Options{}
	if o.config != "" {
		var err error
		if opts, err = server.ProcessConfigFile(o.config); err != nil {
			return nil, errs.Wrap(errs.Config, op, err, "--config")
		}
	}
	fl := cmd.Flags()
	if o.config == "" || fl.Changed("listen") {
		host, port, err := splitListen(o.listen)
		if err != nil {
			return nil, err
		}
		opts.Host, opts.Port = host, port
	}
	switch {
	case fl.Changed("jetstream-dir"):
		opts.StoreDir = o.jetstreamDir
	case opts.StoreDir == "":
		opts.StoreDir = filepath.Join(dataDir(), "nats")
	}
	opts.JetStream = true
	opts.Debug = opts.Debug || o.debug
	if err := o.applyTLS(opts); err != nil {
		return nil, err
	}
	if !loopback(opts.Host) && authMode(opts) == "none" && !o.noAuth {
		return nil, errs.New(errs.Config, op, "listening on %s without authentication would let anyone who reaches it run the cluster: give --config with the deployment gorch auth init writes (or --no-auth if that is meant)", opts.Host)
	}
	return opts, nil
}

// applyTLS sets the server's TLS from --tls-cert, --tls-key and --tls-ca.
func (o natsCmdOptions) applyTLS(opts *server.Options) error {
	const op = "nats"
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errs.New(errs.Config, op, "--tls-cert and --tls-key go together")
	}
	if o.tlsCert == "" {
		if o.tlsCA != "" {
			return errs.New(errs.Config, op, "--tls-ca verifies clients of a TLS server: give --tls-cert and --tls-key too")
		}
		return nil
	}
	tc := &server.TLSConfigOpts{CertFile: o.tlsCert, KeyFile: o.tlsKey, CaFile: o.tlsCA, Verify: o.tlsCA != ""}
	cfg, err := server.GenTLSConfig(tc)
	if err != nil {
		return errs.Wrap(errs.Config, op, err, "TLS")
	}
	opts.TLSConfig, opts.TLS, opts.TLSVerify, opts.TLSTimeout = cfg, true, tc.Verify, 2
	return nil
}

// splitListen parses --listen: host:port, with port 0 for any free port.
func splitListen(s string) (string, int, error) {
	host, p, err := net.SplitHostPort(s)
	port, perr := strconv.Atoi(p)
	if err != nil || perr != nil || port < 0 || port > 65535 || host == "" {
		return "", 0, errs.New(errs.Config, "nats", "--listen %q: want host:port, e.g. 127.0.0.1:4222 or 0.0.0.0:4222 (port 0: any free port)", s)
	}
	return host, port, nil
}

// loopback reports whether host is a loopback address or localhost.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// authMode names how the server authenticates clients ("none" if not).
func authMode(o *server.Options) string {
	switch {
	case len(o.TrustedOperators) > 0 || len(o.TrustedKeys) > 0:
		return "operator"
	case len(o.Nkeys) > 0 || len(o.Users) > 0:
		return "users"
	case o.Authorization != "" || o.Username != "":
		return "token/password"
	case o.AuthCallout != nil:
		return "callout"
	case o.TLSVerify && o.TLSMap:
		return "tls-map"
	}
	return "none"
}

// serverLog writes nats-server's log through slog: its notices at info,
// warnings, errors (a refused login, a permissions violation) and fatal
// errors at warn or error, debug and trace at debug.
type serverLog struct{ log *slog.Logger }

func (l serverLog) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l serverLog) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLog) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLog) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLog) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l serverLog) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
