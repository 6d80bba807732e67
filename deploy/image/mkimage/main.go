// Command mkimage writes a container image as an OCI archive (an OCI image layout in a
// tar: podman load -i, skopeo copy oci-archive:FILE ...) from files on disk, without
// Docker and reproducibly: the same files and flags give the same bytes, so the same
// digest. scripts/image.sh builds the gorch image with it.
//
//	mkimage -o gorch.tar -name gorch:0.1.0 -user 65532:65532 -entrypoint /gorch \
//	    -add bin/gorch:/gorch:0755 -add deploy/image/passwd:/etc/passwd:0644
//
// The image is FROM scratch with one layer. Every file is owned by root, with the mode
// given, and dated SOURCE_DATE_EPOCH (default 0); a folder -add is added with its files,
// in name order.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// entry is one file of the layer: where it comes from on disk, where it goes.
type entry struct {
	src, dst string
	mode     int64
}

type options struct {
	out, name, user string
	entrypoint      string
	env             []string
	files           []entry
	created         time.Time
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	o, err := parseFlags(os.Args[1:])
	if err == nil {
		var digest string
		digest, err = build(o)
		if err == nil {
			fmt.Printf("%s %s\n", o.out, digest)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mkimage: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fl := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	var adds, env listFlag
	fl.StringVar(&o.out, "o", "", "OCI archive to write (required)")
	fl.StringVar(&o.name, "name", "", "image name:tag, recorded as the index's ref name (required)")
	fl.StringVar(&o.user, "user", "", "user[:group] the image runs as")
	fl.StringVar(&o.entrypoint, "entrypoint", "", "the image's entrypoint (one path)")
	fl.Var(&adds, "add", "SRC:DST:MODE, a file or folder to add (repeatable)")
	fl.Var(&env, "env", "KEY=VALUE in the image's environment (repeatable)")
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if o.out == "" || o.name == "" {
		return nil, fmt.Errorf("-o and -name are required")
	}
	o.env = env
	epoch := int64(0)
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970", s)
		}
		epoch = n
	}
	o.created = time.Unix(epoch, 0).UTC()
	for _, a := range adds {
		parts := strings.Split(a, ":")
		if len(parts) != 3 || !strings.HasPrefix(parts[1], "/") {
			return nil, fmt.Errorf("-add %q: want SRC:/DST:MODE", a)
		}
		mode, err := strconv.ParseInt(parts[2], 8, 64)
		if err != nil || mode < 0 || mode > 0o7777 {
			return nil, fmt.Errorf("-add %q: mode %q is not an octal file mode", a, parts[2])
		}
		files, err := expand(entry{src: parts[0], dst: path.Clean(parts[1]), mode: mode})
		if err != nil {
			return nil, err
		}
		o.files = append(o.files, files...)
	}
	return o, nil
}

// expand lists a folder's files (recursively, in name order), or the one file.
func expand(e entry) ([]entry, error) {
	fi, err := os.Stat(e.src)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []entry{e}, nil
	}
	var out []entry
	err = filepath.WalkDir(e.src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(e.src, p)
		out = append(out, entry{src: p, dst: path.Join(e.dst, filepath.ToSlash(rel)), mode: e.mode})
		return err
	})
	return out, err
}

// build writes the archive and returns the image's digest (its manifest's).
func build(o *options) (string, error) {
	layer, diffID, err := layerTar(o.files, o.created)
	if err != nil {
		return "", err
	}
	cfg := map[string]any{
		"created":      o.created.Format(time.RFC3339),
		"architecture": "amd64",
		"os":           "linux",
		"config": map[string]any{
			"User":       o.user,
			"Entrypoint": []string{o.entrypoint},
			"Env":        o.env,
			"WorkingDir": "/",
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history": []map[string]any{{"created": o.created.Format(time.RFC3339), "created_by": "mkimage"}},
	}
	config, err := json.Marshal(cfg)
	if err != nil {
		return "", err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor("application/vnd.oci.image.config.v1+json", config),
		"layers":        []map[string]any{descriptor("application/vnd.oci.image.layer.v1.tar+gzip", layer)},
	})
	if err != nil {
		return "", err
	}
	md := descriptor("application/vnd.oci.image.manifest.v1+json", manifest)
	md["annotations"] = map[string]string{"org.opencontainers.image.ref.name": o.name}
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []map[string]any{md}})
	if err != nil {
		return "", err
	}
	var archive bytes.Buffer
	tw := tar.NewWriter(&archive)
	put := func(name string, b []byte) error { return writeFile(tw, name, b, 0o644, o.created) }
	for _, f := range []struct {
		name string
		b    []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", index},
		{blobPath(config), config},
		{blobPath(manifest), manifest},
		{blobPath(layer), layer},
	} {
		if err := put(f.name, f.b); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	// Write beside the target and rename, so that a failed build leaves no partial file.
	tmp := o.out + ".tmp"
	if err := os.WriteFile(tmp, archive.Bytes(), 0o644); err != nil {
		return "", err
	}
	return md["digest"].(string), os.Rename(tmp, o.out)
}

func digest(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

func blobPath(b []byte) string { return "blobs/sha256/" + strings.TrimPrefix(digest(b), "sha256:") }

func descriptor(mediaType string, b []byte) map[string]any {
	return map[string]any{"mediaType": mediaType, "digest": digest(b), "size": len(b)}
}

// layerTar returns the gzipped layer and the digest of its uncompressed tar (the diff ID).
// Parent folders are written before their files, each once, mode 0755.
func layerTar(files []entry, mtime time.Time) (gz []byte, diffID string, err error) {
	slices.SortFunc(files, func(a, b entry) int { return strings.Compare(a.dst, b.dst) })
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	dirs := map[string]bool{}
	for _, f := range files {
		for _, d := range parents(f.dst) {
			if !dirs[d] {
				dirs[d] = true
				hdr := &tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime}
				if err := tw.WriteHeader(hdr); err != nil {
					return nil, "", err
				}
			}
		}
		b, err := os.ReadFile(f.src)
		if err != nil {
			return nil, "", err
		}
		if err := writeFile(tw, strings.TrimPrefix(f.dst, "/"), b, f.mode, mtime); err != nil {
			return nil, "", err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.DefaultCompression)
	if err != nil {
		return nil, "", err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return out.Bytes(), digest(raw.Bytes()), nil
}

// parents lists the folders above p, outermost first, without the leading slash.
func parents(p string) []string {
	var out []string
	for d := path.Dir(p); d != "/" && d != "."; d = path.Dir(d) {
		out = append([]string{strings.TrimPrefix(d, "/")}, out...)
	}
	return out
}

func writeFile(tw *tar.Writer, name string, b []byte, mode int64, mtime time.Time) error {
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(b)), Mode: mode, ModTime: mtime}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := tw.Write(b)
	return err
}
