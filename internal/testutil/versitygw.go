// Package testutil holds test helpers shared across gorch packages.
package testutil

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// S3Server is a running versitygw: an S3-compatible server over a temp
// directory that checks SigV4 signatures.
type S3Server struct {
	Endpoint  string // 127.0.0.1:port
	AccessKey string
	SecretKey string
	Dir       string // the posix backend's root; buckets are its subdirectories

	bin    string
	mu     sync.Mutex
	cmd    *exec.Cmd  // nil while stopped
	exited chan error // Wait's result, put back after each read
}

// VersityGWPath finds the versitygw binary (see ToolPath); "" if there is
// none.
func VersityGWPath() string { return ToolPath("versitygw", VersityGWVersion) }

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// StartVersityGW starts versitygw on a free 127.0.0.1 port over a fresh
// temp directory, waits until it accepts connections, and stops it when
// the test ends. A missing binary fails the test with the install command.
func StartVersityGW(tb testing.TB) *S3Server {
	tb.Helper()
	bin := VersityGWPath()
	if bin == "" {
		tb.Fatalf("versitygw not found in $PATH or %s; install it with: %s", ToolCache(), ToolInstall)
	}
	s := &S3Server{AccessKey: "gorchtest", SecretKey: "gorchtestsecret", Dir: tb.TempDir(), bin: bin}
	s.Endpoint = FreeAddr(tb)
	tb.Cleanup(s.Stop)
	s.start(tb)
	return s
}

// Stop kills the server (SIGKILL) and waits for it to exit; the data in
// Dir stays. Restart starts it again. Stopping a stopped server does nothing.
func (s *S3Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	err := <-exited
	exited <- err
}

// Restart starts a stopped server again on the same endpoint and
// directory, and waits until it accepts connections.
func (s *S3Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	s.start(tb)
}

func (s *S3Server) start(tb testing.TB) {
	tb.Helper()
	var logs syncBuffer
	cmd := exec.Command(s.bin, "--port", s.Endpoint, "--quiet", "posix", s.Dir)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		tb.Fatalf("versitygw: start %s: %v", s.bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			tb.Fatalf("versitygw exited during start-up (%v): %s", err, logs.String())
		default:
		}
		if c, err := net.DialTimeout("tcp", s.Endpoint, 200*time.Millisecond); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("versitygw did not listen on %s within 15s: %s", s.Endpoint, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
