package experiment

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// corpusDir holds every corruption case as a file, with cases.json naming
// each file's expected reason, so that other readers of RTCH (the Python
// package's tests) check exactly the files the Go reader is tested on.
const corpusDir = "testdata/corrupt"

type corpusCase struct {
	File   string `json:"file"`
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

var nonSlug = regexp.MustCompile(`[^a-z0-9]+`)

// TestCheckpointCorpus checks that testdata/corrupt holds exactly the
// cases of corruptionCases (rewrite it with -update) and that each fails
// to load with its reason.
func TestCheckpointCorpus(t *testing.T) {
	var want []corpusCase
	files := map[string][]byte{}
	for _, c := range corruptionCases(t) {
		f := nonSlug.ReplaceAllString(string(bytes.ToLower([]byte(c.name))), "-") + ".rtch"
		want = append(want, corpusCase{File: f, Name: c.name, Reason: c.want.String()})
		files[f] = c.file
	}
	index, _ := json.MarshalIndent(want, "", "  ")
	if *update {
		if err := os.RemoveAll(corpusDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(corpusDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f, b := range files {
			if err := os.WriteFile(filepath.Join(corpusDir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(corpusDir, "cases.json"), append(index, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(filepath.Join(corpusDir, "cases.json"))
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), index) {
		t.Fatalf("%s/cases.json differs from the corruption cases; run go test -update", corpusDir)
	}
	for _, c := range want {
		b, err := os.ReadFile(filepath.Join(corpusDir, c.File))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, files[c.File]) {
			t.Errorf("%s differs from case %q; run go test -update", c.File, c.Name)
		}
		var ce *CorruptionError
		if _, err := decode(b); !errors.As(err, &ce) || ce.Reason.String() != c.Reason {
			t.Errorf("DecodeCheckpoint(%s) = %v, want reason %q", c.File, err, c.Reason)
		}
	}
}
