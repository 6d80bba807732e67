package auth

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/jwt/v2"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/pkg/errs"
)

// RevokeWorker revokes worker id's credentials in deployment dir and
// returns the public key of the user they held. The gorch account's JWT
// in the server configuration gets a revocation of that user key (every
// JWT of the key issued until now is refused), signed again with the
// operator key, and the worker's credentials file is removed. The server
// applies the change when it reloads its configuration (SIGHUP to
// nats-server or to `gorch nats`): it then closes the worker's
// connections and refuses the old credentials, wherever copies of them
// are. AddWorker can later mint new credentials for the same id, with a
// new key.
func RevokeWorker(dir, id string) (string, error) {
	const op = "auth.RevokeWorker"
	if err := checkWorkerID(op, id); err != nil {
		return "", err
	}
	operator, err := readSeed(filepath.Join(dir, KeysDir, operatorSeedFile))
	if err != nil {
		return "", errs.Wrap(errs.Config, op, err, "%s is not a deployment gorch auth init wrote", dir)
	}
	account, err := readSeed(filepath.Join(dir, KeysDir, accountSeedFile))
	if err != nil {
		return "", errs.Wrap(errs.Config, op, err, "%s is not a deployment gorch auth init wrote", dir)
	}
	apub, _ := account.PublicKey()
	creds := CredsFile(dir, cluster.RoleWorker, id)
	b, err := os.ReadFile(creds)
	if os.IsNotExist(err) {
		return "", errs.New(errs.Config, op, "worker %s has no credentials in %s (never added, or revoked already)", id, dir)
	} else if err != nil {
		return "", errs.Wrap(errs.IO, op, err, "%s", creds)
	}
	tok, err := jwt.ParseDecoratedJWT(b)
	clear(b)
	if err != nil {
		return "", errs.New(errs.Config, op, "%s: no user JWT in it", creds)
	}
	uc, err := jwt.DecodeUserClaims(tok)
	if err != nil {
		return "", errs.New(errs.Config, op, "%s: malformed user JWT", creds)
	}
	conf := filepath.Join(dir, ServerConfigFile)
	text, err := os.ReadFile(conf)
	if err != nil {
		return "", errs.Wrap(errs.Config, op, err, "%s", conf)
	}
	old, at, ok := preloaded(text, apub)
	if !ok {
		return "", errs.New(errs.Config, op, "%s has no JWT of the gorch account %s in resolver_preload", conf, apub)
	}
	ac, err := jwt.DecodeAccountClaims(old)
	if err != nil {
		return "", errs.New(errs.Config, op, "%s: malformed JWT of the gorch account", conf)
	}
	// A revocation covers the JWTs issued up to its time, in seconds:
	// one second ahead covers a JWT minted in this second too.
	ac.RevokeAt(uc.Subject, time.Now().Add(time.Second))
	signed, err := ac.Encode(operator)
	if err != nil {
		return "", errs.Wrap(errs.Internal, op, err, "account JWT")
	}
	out := append(append(append([]byte{}, text[:at]...), signed...), text[at+len(old):]...)
	fi, err := os.Stat(conf)
	if err != nil {
		return "", errs.Wrap(errs.IO, op, err, "%s", conf)
	}
	if err := writeFile(conf, out, fi.Mode().Perm()); err != nil {
		return "", err
	}
	if err := os.Remove(creds); err != nil {
		return "", errs.Wrap(errs.IO, op, err, "%s revoked in %s, but its credentials file stays", id, conf)
	}
	return uc.Subject, nil
}

// preloaded finds the JWT that resolver_preload gives account pub in a
// configuration Init rendered (`  <pub>: "<jwt>"`) and returns it with
// its offset.
func preloaded(conf []byte, pub string) (tok string, at int, ok bool) {
	key := []byte(pub + ": ")
	i := bytes.Index(conf, key)
	if i < 0 {
		return "", 0, false
	}
	rest := conf[i+len(key):]
	end := bytes.IndexByte(rest, '\n')
	if end < 0 {
		end = len(rest)
	}
	s, err := strconv.Unquote(string(bytes.TrimSpace(rest[:end])))
	if err != nil || s == "" {
		return "", 0, false
	}
	return s, i + len(key) + 1, true // after the opening quote
}
