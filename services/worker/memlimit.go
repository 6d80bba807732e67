package worker

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// How an attempt process's memory is limited, best first:
//
//	cgroup-v2  a child group with memory.max, under the worker's own group
//	           where the memory controller is delegated to it
//	cgroup-v1  a child group with memory.limit_in_bytes under the worker's
//	           group of the v1 memory hierarchy
//	rlimit     the attempt limits itself: RLIMIT_AS (address space, with
//	           rlimitSlack for the runtime's reservations) and GOMEMLIMIT
//
// With a cgroup the kernel kills a process over the limit (SIGKILL) and
// the group's counters say it was the limit; with RLIMIT_AS the Go
// runtime fails an allocation with "fatal error: runtime: out of memory".
// In every mode the attempt also sets GOMEMLIMIT a little under the limit,
// so the garbage collector works harder before the limit is reached.
const (
	memCgroupV2 = "cgroup-v2"
	memCgroupV1 = "cgroup-v1"
	memRlimit   = "rlimit"
)

// rlimitSlack is added to the limit for RLIMIT_AS: a Go process maps more
// address space than it uses (arena hints, thread stacks, the binary).
const rlimitSlack = 512 << 20

// cgroupRoot is where cgroup file systems are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// memGroup is a cgroup an attempt process runs in.
type memGroup struct {
	mode string // memCgroupV2 or memCgroupV1
	dir  string
}

var groupSeq atomic.Int64

// newMemGroup makes a cgroup limited to limit bytes for one attempt
// process, named after the worker, or returns nil when this process
// cannot (no writable memory controller: the attempt then limits itself,
// memRlimit).
func newMemGroup(worker string, limit int64) *memGroup {
	name := fmt.Sprintf("gorch-%s-%d-%d", worker, os.Getpid(), groupSeq.Add(1))
	if parent := ownCgroupV2(); parent != "" {
		if g, err := makeGroup(memCgroupV2, filepath.Join(parent, name), "memory.max", limit); err == nil {
			return g
		}
	}
	if parent := ownCgroupV1(); parent != "" {
		if g, err := makeGroup(memCgroupV1, filepath.Join(parent, name), "memory.limit_in_bytes", limit); err == nil {
			return g
		}
	}
	return nil
}

func makeGroup(mode, dir, limitFile string, limit int64) (*memGroup, error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	g := &memGroup{mode: mode, dir: dir}
	if err := os.WriteFile(filepath.Join(dir, limitFile), []byte(strconv.FormatInt(limit, 10)), 0o644); err != nil {
		g.remove()
		return nil, err
	}
	if mode == memCgroupV1 {
		// With swap accounting, swap counts too: over the limit means
		// killed, not swapped out. Without it the file is missing.
		_ = os.WriteFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), []byte(strconv.FormatInt(limit, 10)), 0o644)
	}
	return g, nil
}

// add moves process pid into the group.
func (g *memGroup) add(pid int) error {
	return os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
}

// oomKilled reports whether the kernel killed a process of the group for
// going over its limit.
func (g *memGroup) oomKilled() bool {
	file := "memory.events" // v2
	if g.mode == memCgroupV1 {
		file = "memory.oom_control"
	}
	b, err := os.ReadFile(filepath.Join(g.dir, file))
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" && f[1] != "0" {
			return true
		}
	}
	return false
}

// remove deletes the group once its processes are gone (the kernel may
// take a moment to let go of an exited one).
func (g *memGroup) remove() {
	for try := 0; try < 50; try++ {
		if err := os.Remove(g.dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ownCgroupV2 is this process's cgroup v2 directory when the memory
// controller is enabled for its children, else "".
func ownCgroupV2() string {
	for _, mnt := range []string{cgroupRoot, filepath.Join(cgroupRoot, "unified")} {
		path, ok := ownCgroup("")
		if !ok {
			return ""
		}
		dir := filepath.Join(mnt, path)
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
		if err == nil && strings.Contains(" "+string(b)+" ", " memory ") {
			return dir
		}
	}
	return ""
}

// ownCgroupV1 is this process's directory in the v1 memory hierarchy,
// when there is one, else "".
func ownCgroupV1() string {
	path, ok := ownCgroup("memory")
	if !ok {
		return ""
	}
	dir := filepath.Join(cgroupRoot, "memory", path)
	if _, err := os.Stat(filepath.Join(dir, "memory.limit_in_bytes")); err != nil {
		return ""
	}
	return dir
}

// ownCgroup reads this process's cgroup path for a v1 controller (""
// for the v2 hierarchy) from /proc/self/cgroup.
func ownCgroup(controller string) (string, bool) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if controller == "" && parts[0] == "0" && parts[1] == "" {
			return parts[2], true
		}
		for _, c := range strings.Split(parts[1], ",") {
			if controller != "" && c == controller {
				return parts[2], true
			}
		}
	}
	return "", false
}

// DefaultMemoryLimit is the memory limit of each of slots attempts when
// none is given: 80 % of the machine's memory, or of this process's
// cgroup limit where that is lower (a container), split between them.
func DefaultMemoryLimit(slots int) int64 {
	total := machineMemory()
	if l := cgroupLimit(); l > 0 && l < total {
		total = l
	}
	return total * 4 / 5 / int64(max(slots, 1))
}

// machineMemory is MemTotal of /proc/meminfo in bytes (8 GiB if unknown).
func machineMemory() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 8 << 30
}

// cgroupLimit is this process's cgroup memory limit (v2 memory.max, else
// v1 memory.limit_in_bytes), or 0 for none.
func cgroupLimit() int64 {
	var files []string
	if path, ok := ownCgroup(""); ok {
		files = append(files, filepath.Join(cgroupRoot, path, "memory.max"))
	}
	if path, ok := ownCgroup("memory"); ok {
		files = append(files, filepath.Join(cgroupRoot, "memory", path, "memory.limit_in_bytes"))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 && v < 1<<60 {
			return v
		}
	}
	return 0
}
