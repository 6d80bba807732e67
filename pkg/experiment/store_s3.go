package experiment

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/gorch/gorch/pkg/errs"
)

// S3Config says how to reach an S3-compatible bucket.
type S3Config struct {
	Endpoint  string // host:port, without scheme, e.g. "127.0.0.1:7070" or "s3.amazonaws.com"
	Bucket    string
	AccessKey string
	SecretKey string
	Region    string // default "us-east-1"
	// Insecure selects plain HTTP instead of HTTPS (local test servers).
	Insecure bool
	// CreateBucket creates the bucket if it does not exist.
	CreateBucket bool
}

// S3Store is a [Store] over an S3-compatible bucket, through minio-go/v7.
// Every Put is one whole-object PUT (PutFrom streams a multipart upload
// that S3 completes atomically), so readers never see a partial object.
type S3Store struct {
	c      *minio.Client
	bucket string
}

// s3PartSize bounds the buffer of a streamed upload of unknown size;
// minio-go's default for unknown sizes is over 500 MiB.
const s3PartSize = 16 << 20

// NewS3Store connects to cfg's bucket and checks that it is reachable with
// the credentials given (so a wrong secret fails here, with errs.IO).
func NewS3Store(ctx context.Context, cfg S3Config) (*S3Store, error) {
	const op = "experiment.NewS3Store"
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errs.New(errs.Config, op, "endpoint and bucket are required (endpoint %q, bucket %q)", cfg.Endpoint, cfg.Bucket)
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: !cfg.Insecure,
		Region: region,
	})
	if err != nil {
		return nil, errs.Wrap(errs.Config, op, err, "endpoint %q", cfg.Endpoint)
	}
	ok, err := c.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, s3Err(op, err, "bucket %q at %s", cfg.Bucket, cfg.Endpoint)
	}
	if !ok {
		if !cfg.CreateBucket {
			return nil, errs.New(errs.Config, op, "bucket %q does not exist at %s", cfg.Bucket, cfg.Endpoint)
		}
		// Another process starting at the same time may create it
		// between the check and the create: that is what was wanted.
		err := c.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: region})
		if err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
			return nil, s3Err(op, err, "create bucket %q at %s", cfg.Bucket, cfg.Endpoint)
		}
	}
	return &S3Store{c: c, bucket: cfg.Bucket}, nil
}

// s3Err wraps an S3 error as errs.IO with a one-line message.
func s3Err(op string, err error, format string, args ...any) error {
	resp := minio.ToErrorResponse(err)
	if resp.Code != "" {
		msg := resp.Code
		if resp.Message != "" {
			msg += ": " + strings.Join(strings.Fields(resp.Message), " ")
		}
		err = errs.New(errs.IO, "s3", "%s", msg)
	}
	return errs.Wrap(errs.IO, op, err, format, args...)
}

func isS3NotFound(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.Code == "NoSuchKey" || resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket"
}

// Put implements [Store].
func (s *S3Store) Put(ctx context.Context, key string, data []byte) error {
	const op = "experiment.S3Store.Put"
	if err := checkKey(op, key); err != nil {
		return err
	}
	_, err := s.c.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)), minio.PutObjectOptions{})
	if err != nil {
		return s3Err(op, err, "put %q", key)
	}
	return nil
}

// PutFrom implements [Store].
func (s *S3Store) PutFrom(ctx context.Context, key string, r io.Reader) error {
	const op = "experiment.S3Store.PutFrom"
	if err := checkKey(op, key); err != nil {
		return err
	}
	_, err := s.c.PutObject(ctx, s.bucket, key, r, -1, minio.PutObjectOptions{PartSize: s3PartSize})
	if err != nil {
		return s3Err(op, err, "put %q", key)
	}
	return nil
}

// Get implements [Store].
func (s *S3Store) Get(ctx context.Context, key string) ([]byte, error) {
	const op = "experiment.S3Store.Get"
	if err := checkKey(op, key); err != nil {
		return nil, err
	}
	obj, err := s.c.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err == nil {
		defer obj.Close()
		var b []byte
		b, err = io.ReadAll(obj)
		if err == nil {
			return b, nil
		}
	}
	if isS3NotFound(err) {
		return nil, notFound(op, key)
	}
	return nil, s3Err(op, err, "get %q", key)
}

// List implements [Store].
func (s *S3Store) List(ctx context.Context, prefix string) ([]string, error) {
	return s.list(ctx, "experiment.S3Store.List", prefix, true)
}

// ListDir implements [Store].
func (s *S3Store) ListDir(ctx context.Context, prefix string) ([]string, error) {
	const op = "experiment.S3Store.ListDir"
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		return nil, errs.New(errs.Argument, op, "prefix %q does not end in /", prefix)
	}
	return s.list(ctx, op, prefix, false)
}

func (s *S3Store) list(ctx context.Context, op, prefix string, recursive bool) ([]string, error) {
	if err := checkPrefix(op, prefix); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops minio-go's listing goroutine on early return
	var keys []string
	for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: recursive}) {
		if obj.Err != nil {
			return nil, s3Err(op, obj.Err, "list %q", prefix)
		}
		keys = append(keys, obj.Key)
	}
	slices.Sort(keys)
	return keys, nil
}

// Delete implements [Store].
func (s *S3Store) Delete(ctx context.Context, key string) error {
	const op = "experiment.S3Store.Delete"
	if err := checkKey(op, key); err != nil {
		return err
	}
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil && !isS3NotFound(err) {
		return s3Err(op, err, "delete %q", key)
	}
	return nil
}
