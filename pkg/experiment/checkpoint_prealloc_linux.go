package experiment

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// preallocate reserves size bytes for f, so that writing the checkpoint
// does not grow the file extent by extent. It is best effort: where the
// file system cannot (EOPNOTSUPP), the file grows as it is written.
func preallocate(f *os.File, size int64) {
	if size <= 0 {
		return
	}
	if rc, err := f.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			_ = unix.Fallocate(int(fd), 0, 0, size)
		})
	}
}

// writebackStep is how much written data earlyWriteback lets accumulate
// before it asks the kernel to start writing it to disk.
const writebackStep = 8 << 20

// earlyWriteback returns a writer for f (written sequentially from offset
// 0) that starts writeback of each writebackStep bytes once written
// (sync_file_range SYNC_FILE_RANGE_WRITE, which does not wait), so that
// the disk works while the rest is encoded and the final fsync has less
// left to wait for. Durability still comes from that fsync alone.
func earlyWriteback(f *os.File) io.Writer {
	rc, err := f.SyscallConn()
	if err != nil {
		return f
	}
	return &writebackWriter{f: f, rc: rc}
}

type writebackWriter struct {
	f        *os.File
	rc       interface{ Control(func(uintptr)) error }
	off, beg int64
}

func (w *writebackWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.off += int64(n)
	if w.off-w.beg >= writebackStep {
		beg, n := w.beg, w.off-w.beg
		w.rc.Control(func(fd uintptr) {
			_ = unix.SyncFileRange(int(fd), beg, n, unix.SYNC_FILE_RANGE_WRITE) // a hint; errors are fsync's to report
		})
		w.beg = w.off
	}
	return n, err
}
