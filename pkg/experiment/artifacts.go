package experiment

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path"
	"time"

	"github.com/gorch/gorch/pkg/errs"
)

// AddArtifact records an artifact whose bytes are already stored (a.Key) or
// live elsewhere, and rewrites artifacts.json. An artifact with the same
// name replaces the earlier entry. A zero Time becomes now.
func (r *Recorder) AddArtifact(ctx context.Context, a Artifact) error {
	const op = "experiment.Recorder.AddArtifact"
	if a.Name == "" {
		return errs.New(errs.Argument, op, "artifact has no name")
	}
	if a.Time.IsZero() {
		a.Time = time.Now().UTC()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	arts := make([]Artifact, 0, len(r.artifacts)+1)
	for _, x := range r.artifacts {
		if x.Name != a.Name {
			arts = append(arts, x)
		}
	}
	arts = append(arts, a)
	if err := r.putJSON(ctx, artifactsKey(r.run.ID), arts); err != nil {
		return err
	}
	r.artifacts = arts
	return nil
}

// PutArtifact stores the bytes src yields under runs/<id>/artifacts/<name>,
// computing their size and SHA-256 on the way, and records the artifact.
// name may contain slashes; it must be a valid key.
func (r *Recorder) PutArtifact(ctx context.Context, name string, kind ArtifactKind, step int64, src io.Reader) (Artifact, error) {
	const op = "experiment.Recorder.PutArtifact"
	key := runPrefix(r.run.ID) + "artifacts/" + name
	if err := checkKey(op, key); err != nil || path.Clean(key) != key {
		return Artifact{}, errs.New(errs.Argument, op, "invalid artifact name %q", name)
	}
	h := sha256.New()
	cr := &countingReader{r: io.TeeReader(src, h)}
	if err := r.store.PutFrom(ctx, key, cr); err != nil {
		return Artifact{}, err
	}
	a := Artifact{Name: name, Kind: kind, Key: key, Size: cr.n, Checksum: hex.EncodeToString(h.Sum(nil)), Step: step, Time: time.Now().UTC()}
	if err := r.AddArtifact(ctx, a); err != nil {
		return Artifact{}, err
	}
	return a, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
