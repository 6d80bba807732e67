package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
)

// The layout of a deployment directory. Only keys/ and creds/ (and
// tls/*-key.pem) hold secrets; they are written 0600 in 0700 folders.
const (
	ServerConfigFile = "nats-server.conf" // the server's configuration: public JWTs only
	KeysDir          = "keys"             // operator, account and signing-key seeds: keep offline
	CredsDir         = "creds"            // one JWT credentials file per identity
	TLSDir           = "tls"              // CA and server certificate (with --tls-host)
)

// Names of the files under KeysDir.
const (
	operatorSeedFile = "operator.nk"
	accountSeedFile  = "account.nk"
	systemSeedFile   = "system.nk"
)

func signingSeedFile(role string) string { return "signing-" + role + ".nk" }

// CredsFile is the path of an identity's credentials in deployment dir:
// creds/<role>.creds, or creds/worker-<id>.creds for a worker.
func CredsFile(dir, role, id string) string {
	name := role
	if role == cluster.RoleWorker {
		name = cluster.RoleWorker + "-" + id
	}
	return filepath.Join(dir, CredsDir, name+".creds")
}

// InitOptions configures Init.
type InitOptions struct {
	Workers      []string // worker ids to mint credentials for now (more later with AddWorker)
	Listen       string   // the server's host:port (default 127.0.0.1:4222)
	JetStreamDir string   // the server's JetStream store (default <dir>/jetstream)
	TLSHosts     []string // names and addresses for a server certificate; none: no TLS
}

// Init writes a new deployment into dir, which must not exist or be
// empty: an operator, a system account and the gorch account (JetStream
// on), a signing key per role whose scope is that role's permission set
// from Table, credentials for admin, coordinator, collector, client and
// each of o.Workers, the nats-server configuration, and with TLSHosts a
// CA and a server certificate. Everything is written to a temporary
// folder beside dir and renamed into place, so a failure leaves nothing.
func Init(dir string, o InitOptions) error {
	const op = "auth.Init"
	for _, id := range o.Workers {
		if err := checkWorkerID(op, id); err != nil {
			return err
		}
	}
	if d := dupe(o.Workers); d != "" {
		return errs.New(errs.Config, op, "worker %s is named twice", d)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return errs.New(errs.Config, op, "%s exists and is not empty: init never overwrites a deployment (add workers with add-worker)", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return errs.Wrap(errs.IO, op, err, "%s", dir)
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:4222"
	}
	if o.JetStreamDir == "" {
		o.JetStreamDir = filepath.Join(abs, "jetstream")
	} else if o.JetStreamDir, err = filepath.Abs(o.JetStreamDir); err != nil {
		return errs.Wrap(errs.IO, op, err, "%s", o.JetStreamDir)
	}
	tmp := abs + ".tmp-" + randHex()
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return errs.Wrap(errs.IO, op, err, "")
	}
	defer os.RemoveAll(tmp)
	if err := write(tmp, abs, o); err != nil {
		return err
	}
	_ = os.Remove(abs) // an empty folder may stand in the way of the rename
	if err := os.Rename(tmp, abs); err != nil {
		return errs.Wrap(errs.IO, op, err, "")
	}
	return nil
}

// write generates the deployment into tmp, whose paths in the server
// configuration are those it will have at final.
func write(tmp, final string, o InitOptions) error {
	const op = "auth.Init"
	for _, d := range []string{tmp, filepath.Join(tmp, KeysDir), filepath.Join(tmp, CredsDir)} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return errs.Wrap(errs.IO, op, err, "")
		}
	}
	keys, err := newKeys()
	if err != nil {
		return err
	}
	jwts, err := keys.sign()
	if err != nil {
		return err
	}
	for name, kp := range keys.seeds() {
		if err := writeSeed(filepath.Join(tmp, KeysDir, name), kp); err != nil {
			return err
		}
	}
	for _, role := range Roles {
		if role == cluster.RoleWorker {
			continue
		}
		if err := mintUser(CredsFile(tmp, role, ""), role, role, keys.account, keys.signing[role]); err != nil {
			return err
		}
	}
	for _, id := range o.Workers {
		if err := mintUser(CredsFile(tmp, cluster.RoleWorker, id), cluster.RoleWorker, id, keys.account, keys.signing[cluster.RoleWorker]); err != nil {
			return err
		}
	}
	cfg := serverConfig{Listen: o.Listen, JetStreamDir: o.JetStreamDir, jwts: jwts}
	if len(o.TLSHosts) > 0 {
		if cfg.TLSCert, cfg.TLSKey, err = writeTLS(tmp, final, o.TLSHosts); err != nil {
			return err
		}
	}
	return writeFile(filepath.Join(tmp, ServerConfigFile), cfg.render(), 0o644)
}

// deploymentKeys are the key pairs of a deployment.
type deploymentKeys struct {
	operator, system, account nkeys.KeyPair
	signing                   map[string]nkeys.KeyPair // by role
}

func newKeys() (*deploymentKeys, error) {
	k := &deploymentKeys{signing: map[string]nkeys.KeyPair{}}
	var err error
	if k.operator, err = nkeys.CreateOperator(); err != nil {
		return nil, errs.Wrap(errs.Internal, "auth.Init", err, "operator key")
	}
	if k.system, err = nkeys.CreateAccount(); err != nil {
		return nil, errs.Wrap(errs.Internal, "auth.Init", err, "system account key")
	}
	if k.account, err = nkeys.CreateAccount(); err != nil {
		return nil, errs.Wrap(errs.Internal, "auth.Init", err, "account key")
	}
	for _, role := range Roles {
		if k.signing[role], err = nkeys.CreateAccount(); err != nil {
			return nil, errs.Wrap(errs.Internal, "auth.Init", err, "signing key")
		}
	}
	return k, nil
}

// seeds maps each key's file name under KeysDir to its key pair.
func (k *deploymentKeys) seeds() map[string]nkeys.KeyPair {
	m := map[string]nkeys.KeyPair{operatorSeedFile: k.operator, systemSeedFile: k.system, accountSeedFile: k.account}
	for role, kp := range k.signing {
		m[signingSeedFile(role)] = kp
	}
	return m
}

// signedJWTs are the public JWTs the server needs.
type signedJWTs struct {
	operator                    string
	systemPub, accountPub       string
	systemClaims, accountClaims string
}

// sign issues the operator JWT (naming the system account) and the two
// account JWTs. The gorch account has JetStream without limits and one
// scoped signing key per role, whose template is the role's permissions:
// a user signed by it gets exactly those, whatever its own JWT says.
func (k *deploymentKeys) sign() (signedJWTs, error) {
	const op = "auth.Init"
	var s signedJWTs
	opPub, _ := k.operator.PublicKey()
	s.systemPub, _ = k.system.PublicKey()
	s.accountPub, _ = k.account.PublicKey()
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "gorch"
	oc.SystemAccount = s.systemPub
	var err error
	if s.operator, err = oc.Encode(k.operator); err != nil {
		return s, errs.Wrap(errs.Internal, op, err, "operator JWT")
	}
	sc := jwt.NewAccountClaims(s.systemPub)
	sc.Name = "SYS"
	if s.systemClaims, err = sc.Encode(k.operator); err != nil {
		return s, errs.Wrap(errs.Internal, op, err, "system account JWT")
	}
	ac := jwt.NewAccountClaims(s.accountPub)
	ac.Name = "gorch"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: jwt.NoLimit, DiskStorage: jwt.NoLimit,
		Streams: jwt.NoLimit, Consumer: jwt.NoLimit}
	for _, role := range Roles {
		pub, _ := k.signing[role].PublicKey()
		scope := jwt.NewUserScope()
		scope.Key, scope.Role = pub, role
		scope.Description = "gorch " + role + ": the role's least-privilege permissions (gorch auth perms)"
		scope.Template.Permissions = jwtPermissions(Of(role))
		ac.SigningKeys.AddScopedSigner(scope)
	}
	if s.accountClaims, err = ac.Encode(k.operator); err != nil {
		return s, errs.Wrap(errs.Internal, op, err, "account JWT")
	}
	return s, nil
}

// jwtPermissions turns a permission set into the JWT form. A responder
// may send one reply per request it received, within a minute.
func jwtPermissions(p Permissions) jwt.Permissions {
	jp := jwt.Permissions{Pub: jwt.Permission{Allow: p.PubAllow, Deny: p.PubDeny}, Sub: jwt.Permission{Allow: p.SubAllow}}
	if p.Responder {
		jp.Resp = &jwt.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
	}
	return jp
}

// AddWorker mints credentials for worker id in deployment dir with the
// worker signing key, and returns their path. The server needs no change:
// it trusts every user that key signs, with the worker role's
// permissions under the user's name.
func AddWorker(dir, id string) (string, error) {
	const op = "auth.AddWorker"
	if err := checkWorkerID(op, id); err != nil {
		return "", err
	}
	account, err := readSeed(filepath.Join(dir, KeysDir, accountSeedFile))
	if err != nil {
		return "", errs.Wrap(errs.Config, op, err, "%s is not a deployment gorch auth init wrote", dir)
	}
	signer, err := readSeed(filepath.Join(dir, KeysDir, signingSeedFile(cluster.RoleWorker)))
	if err != nil {
		return "", errs.Wrap(errs.Config, op, err, "%s is not a deployment gorch auth init wrote", dir)
	}
	path := CredsFile(dir, cluster.RoleWorker, id)
	if _, err := os.Stat(path); err == nil {
		return "", errs.New(errs.Config, op, "worker %s already has credentials (%s)", id, path)
	}
	return path, mintUser(path, cluster.RoleWorker, id, account, signer)
}

// mintUser writes the credentials of a new user named name with role's
// scoped signing key. The user JWT carries no permissions of its own
// (the scope's template applies) and a role:<role> tag so that a command
// can tell whose credentials it was given.
func mintUser(path, role, name string, account, signer nkeys.KeyPair) error {
	const op = "auth.mint"
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return errs.Wrap(errs.Internal, op, err, "user key")
	}
	upub, _ := ukp.PublicKey()
	apub, _ := account.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = name
	uc.IssuerAccount = apub
	uc.SetScoped(true)
	uc.Tags.Add(roleTag + role)
	tok, err := uc.Encode(signer)
	if err != nil {
		return errs.Wrap(errs.Internal, op, err, "user JWT")
	}
	seed, err := ukp.Seed()
	if err != nil {
		return errs.Wrap(errs.Internal, op, err, "user seed")
	}
	creds, err := jwt.FormatUserConfig(tok, seed)
	ukp.Wipe()
	if err != nil {
		return errs.Wrap(errs.Internal, op, err, "credentials")
	}
	return writeFile(path, creds, 0o600)
}

const roleTag = "role:"

// Identity reads the role and name of the user a credentials file holds
// (the worker id for a worker), without touching its seed.
func Identity(credsFile string) (role, name string, err error) {
	const op = "auth.Identity"
	b, err := os.ReadFile(credsFile)
	if err != nil {
		return "", "", errs.Wrap(errs.Config, op, err, "--creds")
	}
	defer clear(b)
	tok, err := jwt.ParseDecoratedJWT(b)
	if err != nil {
		return "", "", errs.New(errs.Config, op, "--creds %s: no user JWT in it", credsFile)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return "", "", errs.New(errs.Config, op, "--creds %s: malformed user JWT", credsFile)
	}
	for _, t := range uc.Tags {
		if r, ok := strings.CutPrefix(t, roleTag); ok {
			role = r
		}
	}
	return role, uc.Name, nil
}

// checkWorkerID rejects an id that is not one subject token of letters,
// digits, '-' and '_' (it becomes part of the worker's subjects).
func checkWorkerID(op, id string) error {
	ok := id != ""
	for _, r := range id {
		ok = ok && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	}
	if !ok {
		return errs.New(errs.Config, op, "worker id %q: use letters, digits, '-' and '_'", id)
	}
	return nil
}

func dupe(ids []string) string {
	s := slices.Clone(ids)
	slices.Sort(s)
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] {
			return s[i]
		}
	}
	return ""
}

func writeSeed(path string, kp nkeys.KeyPair) error {
	seed, err := kp.Seed()
	if err != nil {
		return errs.Wrap(errs.Internal, "auth.Init", err, "seed")
	}
	// Seed returns the key pair's own bytes: copy, never clear them.
	return writeFile(path, append(slices.Clone(seed), '\n'), 0o600)
}

func readSeed(path string) (nkeys.KeyPair, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	defer clear(b)
	kp, err := nkeys.ParseDecoratedNKey(b)
	if err != nil {
		return nil, errors.New("no nkey seed in " + filepath.Base(path))
	}
	return kp, nil
}

// writeFile writes b to path with mode perm through a temporary file in
// the same folder, so that path is either whole or absent.
func writeFile(path string, b []byte, perm fs.FileMode) error {
	const op = "auth.write"
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return errs.Wrap(errs.IO, op, err, "")
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return errs.Wrap(errs.IO, op, err, "%s", path)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return errs.Wrap(errs.IO, op, err, "%s", path)
	}
	if err := f.Close(); err != nil {
		return errs.Wrap(errs.IO, op, err, "%s", path)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return errs.Wrap(errs.IO, op, err, "%s", path)
	}
	return nil
}

func randHex() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
