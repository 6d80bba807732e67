package main

import (
	"os"

	"github.com/gorch/gorch/pkg/errs"
	"github.com/gorch/gorch/pkg/experiment"
	"github.com/spf13/cobra"
)

// defaultDataDir is the default root of the run-record store.
const defaultDataDir = "./gorch-data"

// dataDirFlag holds the --data-dir flag of the commands that use a local
// record store (train, runs, ckpt pull, up, nats, worker, collector); the
// cluster clients (submit, status, ...) have none. It is bound afresh by
// every newRootCmd, so in-process tests see the default unless they pass
// the flag.
var dataDirFlag = defaultDataDir

// addDataDirFlag adds --data-dir to cmd.
func addDataDirFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&dataDirFlag, "data-dir", defaultDataDir,
		"root of the run-record store (runs/<id>/run.json, summaries, metrics, artifacts)")
}

// dataDir returns the value of --data-dir.
func dataDir() string { return dataDirFlag }

// openStore opens the local record store at --data-dir for reading. Unlike
// experiment.NewLocalStore it does not create the directory: a mistyped
// --data-dir is reported, not silently turned into an empty store.
func openStore() (experiment.Store, error) {
	dir := dataDir()
	fi, err := os.Stat(dir)
	switch {
	case os.IsNotExist(err):
		return nil, errs.New(errs.Config, "data-dir", "data directory %q does not exist (set --data-dir, or run 'gorch train' first)", dir)
	case err != nil:
		return nil, errs.Wrap(errs.IO, "data-dir", err, "data directory %q", dir)
	case !fi.IsDir():
		return nil, errs.New(errs.Config, "data-dir", "data directory %q is not a directory (see --data-dir)", dir)
	}
	return experiment.NewLocalStore(dir)
}
