package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorch/gorch/internal/testutil"
	"github.com/gorch/gorch/pkg/experiment"
)

// TestSIGTERMInterruptsAndResumes kills a training subprocess with SIGTERM
// and checks that it finished its step, checkpointed, recorded status
// interrupted with an incomplete summary, and that --resume completes it.
func TestSIGTERMInterruptsAndResumes(t *testing.T) {
	testutil.Long(t, "runs gorch commands as processes")
	bin := buildGorch(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "train", "--data-dir", dir, "--dataset", "blobs", "--steps", "3000", "--log-every", "20", "--checkpoint-every", "500")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var lines []string
	signalled := false
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if !signalled && strings.Contains(sc.Text(), "step 40/3000") {
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			signalled = true
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !signalled || !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("signalled=%v, exit = %v; stderr:\n%s", signalled, err, strings.Join(lines, "\n"))
	}
	last := lines[len(lines)-1]
	m := regexp.MustCompile(`gorch train --resume (\S+)$`).FindStringSubmatch(last)
	if m == nil || !strings.Contains(last, "interrupted") {
		t.Fatalf("last stderr line = %q, want an interrupted message with the resume command", last)
	}
	id := m[1]

	var sum experiment.Summary
	b, err := os.ReadFile(filepath.Join(dir, "runs", id, "run_summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	stopped := sum.Metrics["train/loss"].LastStep
	if sum.Status != experiment.StatusInterrupted || sum.Complete || stopped < 40 || stopped >= 3000 {
		t.Fatalf("summary after SIGTERM: status %v complete %v last step %d", sum.Status, sum.Complete, stopped)
	}
	ckpts, _ := filepath.Glob(filepath.Join(dir, "runs", id, "checkpoints", "step-*.rtch"))
	if len(ckpts) == 0 || !strings.HasSuffix(ckpts[len(ckpts)-1], "step-"+pad12(stopped)+".rtch") {
		t.Fatalf("checkpoints after SIGTERM = %v, want one at step %d", ckpts, stopped)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, "runs", id, "*", ".*tmp*")); len(tmp) != 0 {
		t.Errorf("temporary files left behind: %v", tmp)
	}

	out, err := exec.CommandContext(ctx, bin, "train", "--data-dir", dir, "--resume", id).Output()
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if !strings.Contains(string(out), "run "+id+": test accuracy") || !strings.Contains(string(out), "after 3000 steps") {
		t.Errorf("resume output = %q", out)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "runs", id, "run_summary.json"))
	sum = experiment.Summary{}
	if err := json.Unmarshal(b, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Status != experiment.StatusSucceeded || sum.Run.Attempt != 2 || sum.Metrics["train/loss"].LastStep != 3000 {
		t.Errorf("summary after resume: status %v attempt %d last step %d", sum.Status, sum.Run.Attempt, sum.Metrics["train/loss"].LastStep)
	}
}

func pad12(n int64) string { return fmt.Sprintf("%012d", n) }
