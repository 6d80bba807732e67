package main

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/gorch/gorch/services/worker"
)

// storeOptions hold the object-store flags of one command (worker,
// collector, up, ckpt pull, runs ...).
type storeOptions struct {
	endpoint, bucket, prefix, accessKey, secretKeyFile, region string
	insecure, createBucket                                     bool
	secretKeyArg                                               string // refused: see config
}

// envSecretKey holds the S3 secret key when --s3-secret-key-file is not
// given. The key has no flag of its own: argv is visible to every user of
// the machine (ps), a file or the environment is not.
const envSecretKey = "AWS_SECRET_ACCESS_KEY"

// addStoreFlags adds --data-dir and the S3 flags to cmd; open the store
// with the returned options. Without an endpoint (flag or
// GORCH_S3_ENDPOINT) the store is the local directory --data-dir.
func addStoreFlags(cmd *cobra.Command) *storeOptions {
	v := &storeOptions{}
	fl := cmd.Flags()
	addDataDirFlag(cmd)
	fl.StringVar(&v.endpoint, "s3-endpoint", "", "S3 endpoint host:port; set it to keep records and checkpoints in S3 instead of --data-dir (env GORCH_S3_ENDPOINT)")
	fl.StringVar(&v.bucket, "s3-bucket", "", "S3 bucket (env GORCH_S3_BUCKET)")
	fl.StringVar(&v.prefix, "s3-prefix", "", "keep every object under this key prefix in the bucket, e.g. team-a (env GORCH_S3_PREFIX)")
	fl.StringVar(&v.accessKey, "s3-access-key", "", "S3 access key (env AWS_ACCESS_KEY_ID)")
	fl.StringVar(&v.secretKeyFile, "s3-secret-key-file", "", "file holding the S3 secret key (or set "+envSecretKey+")")
	fl.StringVar(&v.secretKeyArg, "s3-secret-key", "", "")
	_ = fl.MarkHidden("s3-secret-key")
	fl.StringVar(&v.region, "s3-region", "", "S3 region (env AWS_REGION; default us-east-1)")
	fl.BoolVar(&v.insecure, "s3-insecure", false, "use plain HTTP to the S3 endpoint")
	fl.BoolVar(&v.createBucket, "s3-create-bucket", false, "create the S3 bucket if it does not exist")
	return v
}

// orEnv returns v, or the first non-empty environment variable of names.
func orEnv(v string, names ...string) string {
	for _, n := range names {
		if v != "" {
			return v
		}
		v = os.Getenv(n)
	}
	return v
}

// open opens the store the flags select: S3 when an endpoint is set,
// else the local directory --data-dir (created if missing).
func (v *storeOptions) open(ctx context.Context) (experiment.Store, error) {
	cfg, err := v.config()
	if err != nil {
		return nil, err
	}
	return cfg.Open(ctx)
}

// config checks the flags and says which store they select (what a
// worker hands its attempt processes).
func (v *storeOptions) config() (worker.StoreConfig, error) {
	if v.secretKeyArg != "" {
		return worker.StoreConfig{}, errs.New(errs.Config, "store",
			"--s3-secret-key would show the key to every user of this machine (ps): give it with --s3-secret-key-file or %s", envSecretKey)
	}
	secret, err := v.secretKey()
	if err != nil {
		return worker.StoreConfig{}, err
	}
	cfg := experiment.S3Config{
		Endpoint:     orEnv(v.endpoint, "GORCH_S3_ENDPOINT"),
		Bucket:       orEnv(v.bucket, "GORCH_S3_BUCKET"),
		AccessKey:    orEnv(v.accessKey, "AWS_ACCESS_KEY_ID"),
		SecretKey:    secret,
		Region:       orEnv(v.region, "AWS_REGION"),
		Insecure:     v.insecure,
		CreateBucket: v.createBucket,
	}
	if cfg.Endpoint == "" {
		if cfg.Bucket != "" {
			return worker.StoreConfig{}, errs.New(errs.Config, "store", "--s3-bucket %q given without --s3-endpoint (or GORCH_S3_ENDPOINT)", cfg.Bucket)
		}
		return worker.StoreConfig{Dir: dataDir()}, nil
	}
	if cfg.Bucket == "" {
		return worker.StoreConfig{}, errs.New(errs.Config, "store", "--s3-endpoint %q needs --s3-bucket (or GORCH_S3_BUCKET)", cfg.Endpoint)
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return worker.StoreConfig{}, errs.New(errs.Config, "store",
			"S3 credentials missing: set --s3-access-key (or AWS_ACCESS_KEY_ID) and --s3-secret-key-file (or %s)", envSecretKey)
	}
	return worker.StoreConfig{S3: &cfg, Prefix: orEnv(v.prefix, "GORCH_S3_PREFIX")}, nil
}

// secretKey reads the S3 secret key: the content of --s3-secret-key-file
// (less a final line break), else envSecretKey.
func (v *storeOptions) secretKey() (string, error) {
	if v.secretKeyFile == "" {
		return os.Getenv(envSecretKey), nil
	}
	b, err := os.ReadFile(v.secretKeyFile)
	if err != nil {
		return "", errs.Wrap(errs.Config, "store", err, "--s3-secret-key-file")
	}
	key := strings.TrimRight(string(b), "\r\n")
	if key == "" {
		return "", errs.New(errs.Config, "store", "--s3-secret-key-file %s is empty", v.secretKeyFile)
	}
	return key, nil
}

// openRead is open for commands that only read: a local --data-dir must
// exist (see openStore).
func (v *storeOptions) openRead(ctx context.Context) (experiment.Store, error) {
	if orEnv(v.endpoint, "GORCH_S3_ENDPOINT") == "" && orEnv(v.bucket, "GORCH_S3_BUCKET") == "" {
		return openStore()
	}
	return v.open(ctx)
}

// name names the store the flags select, for messages: the S3
// bucket and endpoint, or --data-dir.
func (v *storeOptions) name() string {
	if e := orEnv(v.endpoint, "GORCH_S3_ENDPOINT"); e != "" {
		return fmt.Sprintf("s3://%s at %s", path.Join(orEnv(v.bucket, "GORCH_S3_BUCKET"), orEnv(v.prefix, "GORCH_S3_PREFIX")), e)
	}
	return dataDir()
}
