package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// helpRunE makes a command group runnable so that cobra validates its
// arguments: "gorch runs bogus" is then an unknown-command error (exit 1)
// rather than help text and exit 0. With no arguments it prints help.
func helpRunE(cmd *cobra.Command, _ []string) error { return cmd.Help() }

// newTable returns a tabwriter for kubectl-style tables: columns separated
// by tabs in the input, by at least two spaces in the output. Call Flush.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// row writes cells as one tab-separated table row.
func row(w io.Writer, cells ...string) {
	fmt.Fprintln(w, strings.Join(cells, "\t"))
}

// writeJSONLines writes each of vs as one line of compact JSON (JSON
// Lines).
func writeJSONLines[T any](w io.Writer, vs []T) error {
	for _, v := range vs {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := w.Write(append(b, '\n')); err != nil {
			return err
		}
	}
	return nil
}

// writeJSONIndent writes v as indented JSON followed by a newline.
func writeJSONIndent(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// fmtFloat formats a metric value compactly: 4 significant digits, and
// NaN/±Inf spelled out.
func fmtFloat(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// fmtDuration rounds d for display; zero reads "-".
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// fmtTime formats t in UTC to the second; the zero time reads "-".
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// fmtBytes formats a byte count in binary units, e.g. "1.5 MiB".
func fmtBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// orDash returns s, or "-" if s is empty, so table cells are never blank.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// flattenJSON flattens a JSON document into dotted keys ("optimizer.lr",
// "layers[1]") mapped to the compact JSON of each leaf. Numbers keep their
// original text. An empty document flattens to nothing; a document that
// is not valid JSON becomes one key, prefix (or "config"), holding its text.
func flattenJSON(prefix string, raw []byte) map[string]string {
	out := map[string]string{}
	if len(bytes.TrimSpace(raw)) == 0 {
		return out
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		out[orDefault(prefix, "config")] = string(raw)
		return out
	}
	flattenValue(out, prefix, v)
	return out
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func flattenValue(out map[string]string, key string, v any) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 0 {
			out[orDefault(key, ".")] = "{}"
		}
		for k, e := range x {
			if key != "" {
				k = key + "." + k
			}
			flattenValue(out, k, e)
		}
	case []any:
		if len(x) == 0 {
			out[orDefault(key, ".")] = "[]"
		}
		for i, e := range x {
			flattenValue(out, key+"["+strconv.Itoa(i)+"]", e)
		}
	case string:
		out[orDefault(key, ".")] = x
	default:
		b, _ := json.Marshal(x)
		out[orDefault(key, ".")] = string(b)
	}
}

// writeFileAtomic writes a file through write into a temp file in path's
// directory and renames it over path, so a failure never leaves a partial
// file at path (and removes the temp file).
func writeFileAtomic(path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := write(f); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
