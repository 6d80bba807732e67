package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/gorch/gorch/internal/auth"
	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
)

// defaultAuthDir is where `gorch auth` keeps a deployment's credentials.
const defaultAuthDir = "gorch-auth"

// newAuthCmd is `gorch auth`: the NATS identities of a multi-machine
// deployment.
func newAuthCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Make the NATS credentials of a multi-machine deployment, one least-privilege identity per role",
		Long: `Make a NATS operator-mode deployment: an operator, the gorch account and one
signing key per role (admin, coordinator, worker, collector, client), whose
template is that role's permission set ('gorch auth perms'); credentials for
each identity; the matching nats-server configuration; optionally a CA and a
server certificate. Run the server with 'gorch nats --config DIR/nats-server.conf'
(or nats-server -c), then each service with --creds DIR/creds/<its>.creds.`,
	}
	cmd.AddCommand(newAuthInitCmd(), newAuthAddWorkerCmd(), newAuthRevokeWorkerCmd(), newAuthPermsCmd())
	return cmd
}

func newAuthInitCmd() *cobra.Command {
	var dir string
	var o auth.InitOptions
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Write a new deployment's keys, credentials and nats-server configuration",
		Long: `Write a new deployment into --dir, which must not exist or be empty:
  nats-server.conf               the server's configuration (public JWTs only)
  creds/<role>.creds             admin, coordinator, collector, client (mode 0600)
  creds/worker-<id>.creds        one per --workers id (more later: gorch auth add-worker)
  keys/                          operator, account and signing keys (0600): keep offline
  tls/ca.pem, server.pem, ...    with --tls-host: clients pass --tls-ca tls/ca.pem
Nothing is written unless everything is.`,
		Example: `  gorch auth init --dir gorch-auth --workers gpu1,gpu2 \
    --listen 0.0.0.0:4222 --tls-host queue.example.com --jetstream-dir /var/lib/gorch/nats`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := auth.Init(dir, o); err != nil {
				return err
			}
			printDeployment(cmd.OutOrStdout(), dir, o)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", defaultAuthDir, "folder to write the deployment into")
	fl.StringSliceVar(&o.Workers, "workers", nil, "worker ids to make credentials for (comma-separated)")
	fl.StringVar(&o.Listen, "listen", "127.0.0.1:4222", "host:port the server listens on (0.0.0.0:4222: every interface)")
	fl.StringVar(&o.JetStreamDir, "jetstream-dir", "", "the server's JetStream store (default DIR/jetstream)")
	fl.StringSliceVar(&o.TLSHosts, "tls-host", nil, "make a CA and a server certificate for these names/addresses (comma-separated)")
	return cmd
}

// printDeployment says what init wrote and which machine needs what.
func printDeployment(w io.Writer, dir string, o auth.InitOptions) {
	fmt.Fprintf(w, "wrote %s\n", dir)
	fmt.Fprintf(w, "server:       gorch nats --config %s\n", filepath.Join(dir, auth.ServerConfigFile))
	tls := ""
	if len(o.TLSHosts) > 0 {
		tls = " --tls-ca " + filepath.Join(dir, auth.TLSDir, "ca.pem")
	}
	fmt.Fprintf(w, "setup:        gorch setup --creds %s%s\n", auth.CredsFile(dir, cluster.RoleAdmin, ""), tls)
	for _, role := range []string{cluster.RoleCoordinator, cluster.RoleCollector} {
		fmt.Fprintf(w, "%-13s gorch %s --creds %s%s\n", role+":", role, auth.CredsFile(dir, role, ""), tls)
	}
	for _, id := range o.Workers {
		fmt.Fprintf(w, "%-13s gorch worker --creds %s%s\n", "worker "+id+":", auth.CredsFile(dir, cluster.RoleWorker, id), tls)
	}
	fmt.Fprintf(w, "clients:      gorch status --creds %s%s\n", auth.CredsFile(dir, cluster.RoleClient, ""), tls)
	fmt.Fprintf(w, "keep %s offline: it mints credentials\n", filepath.Join(dir, auth.KeysDir))
}

func newAuthAddWorkerCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "add-worker ID",
		Short: "Make credentials for one more worker (the server needs no change)",
		Long: `Sign a user for worker ID with the deployment's worker signing key and write
its credentials to DIR/creds/worker-ID.creds (mode 0600). The server trusts
it at once, with the worker role's permissions under ID; start the worker
with --creds and that file (its --id defaults to ID).`,
		Example: "  gorch auth add-worker gpu7 --dir gorch-auth",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := auth.AddWorker(dir, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), path)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultAuthDir, "the deployment gorch auth init wrote")
	return cmd
}

func newAuthRevokeWorkerCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "revoke-worker ID",
		Short: "Revoke a worker's credentials (applied when the NATS server reloads its configuration)",
		Long: `Revoke worker ID's credentials: the gorch account's JWT in DIR/nats-server.conf
gets a revocation of the worker's user key, signed again with the operator key,
and DIR/creds/worker-ID.creds is removed. Reload the server's configuration to
apply it (SIGHUP to 'gorch nats' or nats-server, or 'nats-server --signal reload');
the server then closes the worker's connections and refuses its old credentials,
wherever copies of them are. Other identities are untouched. 'gorch auth
add-worker ID' can mint new credentials for the same worker later.`,
		Example: `  gorch auth revoke-worker gpu7 --dir gorch-auth
  kill -HUP $(pgrep -f 'gorch nats')`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pub, err := auth.RevokeWorker(dir, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked worker %s (user %s) in %s\n", args[0], pub, filepath.Join(dir, auth.ServerConfigFile))
			fmt.Fprintln(cmd.OutOrStdout(), "reload the NATS server's configuration to apply it: SIGHUP to gorch nats or nats-server")
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", defaultAuthDir, "the deployment gorch auth init wrote")
	return cmd
}

func newAuthPermsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "perms [ROLE]",
		Short: "Print the permission table: what each role may publish and subscribe to",
		Long: `Print every role's permissions (or one role's), as 'gorch auth init' puts them
in the roles' signing-key templates. {{name()}} is the worker's id.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			roles := auth.Roles
			if len(args) == 1 {
				if !slices.Contains(auth.Roles, args[0]) {
					return errs.New(errs.Config, "auth perms", "unknown role %q (want one of %s)", args[0], strings.Join(auth.Roles, ", "))
				}
				roles = args
			}
			printPerms(cmd.OutOrStdout(), roles)
			return nil
		},
	}
}

func printPerms(w io.Writer, roles []string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tWHAT\tPUBLISH\tSUBSCRIBE")
	for _, g := range auth.Table() {
		if !slices.Contains(roles, g.Role) {
			continue
		}
		pub := strings.Join(g.Pub, " ")
		if len(g.DenyPub) > 0 {
			pub += " except " + strings.Join(g.DenyPub, " ")
		}
		sub := strings.Join(g.Sub, " ")
		if g.Responder {
			sub += " (and reply to them)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", g.Role, g.What, pub, sub)
	}
	tw.Flush()
}
