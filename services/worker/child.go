package worker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gorch/gorch/internal/cluster"
	"github.com/gorch/gorch/internal/natsconn"
	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/pkg/train"
)

// ChildOptions make a worker run each attempt in a child process of its
// own (the supervisor model): an attempt that runs out of memory, panics
// or crashes ends only itself, with a reason, and the worker's other
// slots (and, in `gorch up`, everything else in its process) go on.
type ChildOptions struct {
	// Command is the argv of an attempt process, e.g. the gorch binary
	// with "worker attempt": it reads a [Ticket] on stdin and runs
	// [RunChild].
	Command []string
	// NATS and Connect say how the attempt connects, as its worker.
	NATS    string
	Connect cluster.ConnectOptions
	// Store says how it opens the store.
	Store StoreConfig
}

// StoreConfig says how to open a store: S3 when S3 is set (every key
// under Prefix, if any), else the local directory Dir. It travels to the
// attempt on its stdin, never its argv.
type StoreConfig struct {
	Dir    string               `json:"dir,omitempty"`
	S3     *experiment.S3Config `json:"s3,omitempty"`
	Prefix string               `json:"prefix,omitempty"`
}

// Open opens the store.
func (c StoreConfig) Open(ctx context.Context) (experiment.Store, error) {
	if c.S3 == nil {
		return experiment.NewLocalStore(c.Dir)
	}
	st, err := experiment.NewS3Store(ctx, *c.S3)
	if err != nil {
		return nil, err
	}
	return experiment.WithPrefix(st, c.Prefix)
}

// forChild is the config an attempt process opens: the bucket exists by
// then (the worker opened the store first).
func (c StoreConfig) forChild() StoreConfig {
	if c.S3 != nil {
		s3 := *c.S3
		s3.CreateBucket = false
		c.S3 = &s3
	}
	return c
}

// childTicket is what the supervisor writes to an attempt process's
// stdin: the attempt, how to connect and store, and its memory limit.
type childTicket struct {
	Ticket
	NATS       string                 `json:"nats"`
	Connect    cluster.ConnectOptions `json:"connect"`
	Store      StoreConfig            `json:"store"`
	MemoryMode string                 `json:"memory_mode"`
}

// Control lines the supervisor writes to an attempt's stdin after the
// ticket. EOF (the supervisor is gone) ends the attempt at once.
const (
	ctlCancel = "cancel" // the run was cancelled: checkpoint and end cancelled
	ctlStop   = "stop"   // the worker is stopping: checkpoint and hand back
)

// childConnectTimeout bounds how long an attempt waits for NATS.
const childConnectTimeout = time.Minute

// errSupervisorGone is the cause of an attempt stopped by EOF on stdin.
var errSupervisorGone = errors.New("the worker that started this attempt is gone")

// RunChild is the body of an attempt process: it reads the ticket from in,
// trains the attempt and writes its [Result] as JSON to out. It returns an
// error only when it cannot start (a bad ticket, NATS or the store
// unreachable); everything after that is in the Result. Signals are the
// supervisor's to handle: the process should ignore SIGINT and SIGTERM.
func RunChild(ctx context.Context, in io.Reader, out io.Writer, log *slog.Logger) error {
	const op = "worker.attempt"
	r := bufio.NewReader(in)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return errs.Wrap(errs.Argument, op, err, "reading the attempt's ticket")
	}
	var t childTicket
	if err := json.Unmarshal(line, &t); err != nil {
		return errs.Wrap(errs.Argument, op, err, "decoding the attempt's ticket")
	}
	limitSelf(t.MemoryLimit, t.MemoryMode, log)
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go follow(r, stop)
	// Set-up outlives a cancel: the attempt then ends at once, with a result.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), childConnectTimeout)
	defer cancel()
	co := t.Connect
	co.Retry, co.Logger = true, log
	nc, err := natsconn.Dial(cctx, t.NATS, co)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return errs.Wrap(errs.Cluster, op, err, "")
	}
	store, err := t.Store.Open(cctx)
	if err != nil {
		return err
	}
	res := runAttempt(ctx, attemptEnv{nc: nc, js: js, store: store, log: log}, &t.Ticket)
	if errors.Is(context.Cause(ctx), errSupervisorGone) {
		return errs.New(errs.Cluster, op, "%s", errSupervisorGone)
	}
	if err := nc.Flush(); err != nil {
		log.Warn("flushing the connection failed", "err", err)
	}
	res.PeakRSS = peakRSS()
	return json.NewEncoder(out).Encode(&res)
}

// follow turns control lines into the attempt's cancellation cause.
func follow(r *bufio.Reader, stop context.CancelCauseFunc) {
	for {
		line, err := r.ReadString('\n')
		switch strings.TrimSpace(line) {
		case ctlCancel:
			stop(errCancelRequested)
		case ctlStop:
			stop(errStopping)
		}
		if err != nil {
			stop(errSupervisorGone)
			return
		}
	}
}

// errStopping is the cause of an attempt whose worker is stopping.
var errStopping = errors.New("the worker is stopping")

// limitSelf applies the attempt's memory limit from within: GOMEMLIMIT a
// little under it always, and RLIMIT_AS where no cgroup holds the process.
func limitSelf(limit int64, mode string, log *slog.Logger) {
	if limit <= 0 {
		return
	}
	debug.SetMemoryLimit(limit / 10 * 9)
	if mode != memRlimit {
		return
	}
	rl := syscall.Rlimit{Cur: uint64(limit + rlimitSlack), Max: uint64(limit + rlimitSlack)}
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &rl); err != nil {
		log.Warn("setting RLIMIT_AS failed; the attempt runs without a hard memory limit", "err", err)
	}
}

// runChild runs attempt t in a child process (o.Command), with the
// worker's memory limit, and says how it ended: the child's own Result,
// or, when it died without one, a failure whose reason says how (out of
// memory, a panic, a signal).
func (w *Worker) runChild(ctx context.Context, t *Ticket) Result {
	o := w.opts.Child
	ct := childTicket{Ticket: *t, NATS: o.NATS, Connect: o.Connect, Store: o.Store.forChild(), MemoryMode: memRlimit}
	group := (*memGroup)(nil)
	if t.MemoryLimit > 0 {
		if group = newMemGroup(w.opts.ID, t.MemoryLimit); group != nil {
			ct.MemoryMode = group.mode
			defer group.remove()
		}
	}
	log := w.log.With("run", t.Request.RunID, "attempt", t.Attempt)
	spawned := time.Now()
	c, err := startChild(o.Command, log)
	if err != nil {
		return failure(err)
	}
	if group != nil {
		if err := group.add(c.cmd.Process.Pid); err != nil {
			w.log.Warn("moving the attempt into its memory group failed; it limits itself", "err", err)
			ct.MemoryMode = memRlimit
		}
	}
	b, _ := json.Marshal(&ct)
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		w.log.Warn("handing the attempt its ticket failed", "err", err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			line := ctlStop
			if errors.Is(context.Cause(ctx), errCancelRequested) {
				line = ctlCancel
			}
			_, _ = io.WriteString(c.stdin, line+"\n")
		case <-done:
		}
	}()
	res, werr := c.wait()
	close(done)
	if res == nil {
		r := childFailure(werr, c.stderrTail(), group, t.MemoryLimit)
		res = &r
	}
	attrs := []any{"pid", c.cmd.Process.Pid, "memory_mode", ct.MemoryMode, "took", time.Since(spawned).Round(time.Millisecond)}
	if !res.Started.IsZero() {
		attrs = append(attrs, "startup", res.Started.Sub(spawned).Round(time.Millisecond)) // exec, connect, dataset, model
	}
	if res.PeakRSS > 0 {
		attrs = append(attrs, "peak_rss", train.FormatBytes(res.PeakRSS))
	}
	log.Info("attempt process ended", attrs...)
	return *res
}

// child is a running attempt process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	result *os.File // read end of fd 3
	logged sync.WaitGroup
	mu     sync.Mutex
	tail   []string // its last stderr lines
}

// tailLines is how many of an attempt's last stderr lines are kept for
// the reason of its death.
const tailLines = 64

// startChild starts argv with stdin a pipe, stderr copied line by line to
// log (and kept for the reason of a death), and fd 3 the result pipe. The
// child dies with its supervisor (Pdeathsig).
func startChild(argv []string, log *slog.Logger) (*child, error) {
	const op = "worker.startAttempt"
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, errs.Wrap(errs.IO, op, err, "")
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, errs.Wrap(errs.IO, op, err, "")
	}
	rr, rw, err := os.Pipe()
	if err != nil {
		return nil, errs.Wrap(errs.IO, op, err, "")
	}
	cmd.ExtraFiles = []*os.File{rw}
	if err := cmd.Start(); err != nil {
		rr.Close()
		rw.Close()
		return nil, errs.Wrap(errs.Internal, op, err, "starting %s", argv[0])
	}
	rw.Close() // the child holds the write end
	c := &child{cmd: cmd, stdin: stdin, result: rr}
	c.logged.Go(func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			log.Info("attempt: " + line)
			c.mu.Lock()
			if c.tail = append(c.tail, line); len(c.tail) > tailLines {
				c.tail = c.tail[1:]
			}
			c.mu.Unlock()
		}
	})
	return c, nil
}

// wait reads the child's result and waits for it to exit.
func (c *child) wait() (*Result, error) {
	b, _ := io.ReadAll(c.result) // EOF when the child exits
	c.result.Close()
	c.logged.Wait()
	err := c.cmd.Wait()
	c.stdin.Close()
	var res Result
	if len(b) > 0 && json.Unmarshal(b, &res) == nil && res.Status != "" {
		return &res, nil
	}
	return nil, err
}

func (c *child) stderrTail() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.tail...)
}

// childFailure is the Result of an attempt process that ended without
// one: its exit (err, from Wait), its last stderr lines and its memory
// group say why.
func childFailure(err error, tail []string, group *memGroup, limit int64) Result {
	const op = "attempt"
	oom := group != nil && group.oomKilled()
	var panicLine, fatalLine string
	for _, l := range tail {
		switch {
		case panicLine == "" && strings.HasPrefix(l, "panic: "):
			panicLine = strings.TrimSuffix(strings.TrimSuffix(l, " [recovered]"), " [recovered, repanicked]")
		case fatalLine == "" && strings.HasPrefix(l, "fatal error: "):
			fatalLine = strings.TrimPrefix(l, "fatal error: ")
		}
		oom = oom || strings.Contains(l, "runtime: out of memory") || strings.Contains(l, "fatal error: out of memory")
	}
	var sig syscall.Signal
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			sig = ws.Signal()
		}
	}
	switch {
	case oom:
		return failure(errs.New(errs.Memory, op, "out of memory (limit %s)", train.FormatBytes(limit)))
	case panicLine != "":
		return failure(errs.New(errs.Internal, op, "%s", panicLine))
	case fatalLine != "":
		return failure(errs.New(errs.Internal, op, "crashed: %s", fatalLine))
	case sig == syscall.SIGKILL:
		// Killed from outside, not for memory: another attempt may fare better.
		return failure(errs.New(errs.Other, op, "killed (SIGKILL)"))
	case sig != 0:
		return failure(errs.New(errs.Internal, op, "crashed: %s", signalName(sig)))
	}
	last := ""
	if len(tail) > 0 {
		last = ": " + tail[len(tail)-1]
	}
	return failure(errs.New(errs.Other, op, "the attempt process ended without a result (%v)%s", err, last))
}

// signalName is "SIGSEGV" for syscall.SIGSEGV.
func signalName(s syscall.Signal) string {
	names := map[syscall.Signal]string{syscall.SIGSEGV: "SIGSEGV", syscall.SIGBUS: "SIGBUS", syscall.SIGILL: "SIGILL",
		syscall.SIGABRT: "SIGABRT", syscall.SIGFPE: "SIGFPE", syscall.SIGKILL: "SIGKILL", syscall.SIGTERM: "SIGTERM",
		syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT", syscall.SIGTRAP: "SIGTRAP", syscall.SIGSYS: "SIGSYS"}
	if n, ok := names[s]; ok {
		return n
	}
	return fmt.Sprintf("signal %d (%s)", int(s), s)
}

// peakRSS is this process's peak resident memory (VmHWM), or 0.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" && f[2] == "kB" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
