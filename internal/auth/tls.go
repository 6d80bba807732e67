package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/gorch/gorch/pkg/errs"
)

// Validity of the certificates Init makes.
const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 825 * 24 * time.Hour // the longest that clients such as macOS accept
)

// writeTLS makes a CA and a server certificate for hosts (DNS names or IP
// addresses) under tmp/tls, the CA's key under tmp/keys, and returns the
// paths the server's certificate and key will have under final. Clients
// verify the server with tls/ca.pem (--tls-ca).
func writeTLS(tmp, final string, hosts []string) (certPath, keyPath string, err error) {
	const op = "auth.Init"
	if err := os.Mkdir(filepath.Join(tmp, TLSDir), 0o755); err != nil {
		return "", "", errs.Wrap(errs.IO, op, err, "")
	}
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", errs.Wrap(errs.Internal, op, err, "CA key")
	}
	ca := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "gorch NATS CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(caValidity), IsCA: true, BasicConstraintsValid: true,
		MaxPathLenZero: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", errs.Wrap(errs.Internal, op, err, "CA certificate")
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", errs.Wrap(errs.Internal, op, err, "server key")
	}
	srv := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(serverValidity),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			srv.IPAddresses = append(srv.IPAddresses, ip)
		} else {
			srv.DNSNames = append(srv.DNSNames, h)
		}
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		return "", "", errs.Wrap(errs.Internal, op, err, "server certificate")
	}
	files := []struct {
		path  string
		block *pem.Block
		perm  os.FileMode
	}{
		{filepath.Join(TLSDir, "ca.pem"), &pem.Block{Type: "CERTIFICATE", Bytes: caDER}, 0o644},
		{filepath.Join(TLSDir, "server.pem"), &pem.Block{Type: "CERTIFICATE", Bytes: srvDER}, 0o644},
		{filepath.Join(TLSDir, "server-key.pem"), keyBlock(srvKey), 0o600},
		{filepath.Join(KeysDir, "ca-key.pem"), keyBlock(caKey), 0o600},
	}
	for _, f := range files {
		if f.block == nil {
			return "", "", errs.New(errs.Internal, op, "encoding %s", f.path)
		}
		if err := writeFile(filepath.Join(tmp, f.path), pem.EncodeToMemory(f.block), f.perm); err != nil {
			return "", "", err
		}
	}
	return filepath.Join(final, TLSDir, "server.pem"), filepath.Join(final, TLSDir, "server-key.pem"), nil
}

func keyBlock(k *ecdsa.PrivateKey) *pem.Block {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil
	}
	return &pem.Block{Type: "PRIVATE KEY", Bytes: der}
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
