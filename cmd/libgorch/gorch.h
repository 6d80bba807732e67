/* gorch.h: the C ABI of libgorch.so (cmd/libgorch), version GORCH_ABI_VERSION.
 *
 * Conventions, for every function that returns int:
 *   - 0 is success; otherwise the value is 1 + the errs.Kind of the failure
 *     (1 other, 2 layout, 3 shape, 4 argument, 5 checkpoint, 6 training,
 *     7 experiment, 8 config, 9 io, 10 cluster, 11 data, 12 internal,
 *     13 memory, 14 unsupported) or
 *     GORCH_EFORK, and *err (when err is not NULL) receives a JSON object
 *     {"kind", "op", "message", "reason", "not_found"} to free with gorch_free.
 *   - A Go panic inside a call is recovered and reported as kind internal.
 *   - Objects are uint64 handles from a table in the library; a stale or
 *     wrong handle is an argument error, never a crash. gorch_close frees one.
 *   - Strings and JSON returned through char** are malloc'd: free them with
 *     gorch_free. Memory the caller passes in is read or written only during
 *     the call.
 *   - A process forked after the library was loaded gets GORCH_EFORK from
 *     every call: use spawn, not fork, to start workers that call gorch.
 *
 * New objects follow the same shape: a constructor that returns a handle
 * (e.g. a compiled plan), calls that take it plus caller-owned memory
 * described by plain integers (pointers, shapes, strides in one int64 array),
 * and gorch_close. Caller memory is only used during the call.
 */
#ifndef GORCH_H
#define GORCH_H
#include <stdint.h>

#define GORCH_ABI_VERSION 2
#define GORCH_EFORK 100

void gorch_free(void *p);
int gorch_abi_version(void);
int gorch_version(char **out, char **err);
int gorch_close(uint64_t h, char **err);
int gorch_live_handles(void); /* objects held, for leak tests */

/* Checkpoints (RTCH). open: src is a path; the file is validated exactly as
 * the Go reader does (every checksum) and mapped read-only; *data/*size
 * stay valid until gorch_close(*h). *info is the checkpoint's JSON summary. */
int gorch_ckpt_open(const char *path, uint64_t *h, char **info, void **data, int64_t *size, char **err);
/* save: spec is JSON {"tensors":[{"name","shape"}...], "optimizer", "train",
 * "model_config", "metadata"}; optimizer buffers name tensors of the list.
 * data[i] points at tensor i's float32 values, C-contiguous. */
int gorch_ckpt_save(const char *path, const char *spec, int64_t n, const float *const *data, char **err);

/* Record stores. cfg is JSON {"path": DIR} or {"s3": {"endpoint", "bucket", "prefix",
 * "access_key", "secret_key", "region", "insecure", "create_bucket"}}. */
int gorch_store_open(const char *cfg, uint64_t *h, char **err);
int gorch_store_runs(uint64_t store, char **out, char **err);
int gorch_store_run(uint64_t store, const char *run, char **out, char **err);
int gorch_store_checkpoints(uint64_t store, const char *run, char **out, char **err);
/* step < 0: the newest. Like gorch_ckpt_open, from the store. */
int gorch_store_checkpoint(uint64_t store, const char *run, int64_t step, uint64_t *h, char **info, void **data,
                           int64_t *size, char **err);
/* Paged reads. metrics_open: names is a JSON list or NULL for all. next fills
 * up to cap points into the caller's arrays; *n = 0 at the end. *names is the
 * JSON list of metric names so far (name[i] indexes it). */
int gorch_metrics_open(uint64_t store, const char *run, const char *names, uint64_t *it, char **err);
int gorch_metrics_next(uint64_t it, int64_t cap, int64_t *step, int32_t *name, double *value, int64_t *time_ns,
                       int32_t *attempt, int64_t *n, char **names, char **err);
int gorch_telemetry_open(uint64_t store, const char *run, uint64_t *it, char **err);
/* JSON pages: *out is a JSON list of up to max items, waiting up to wait_ms
 * for the first; *done = 1 once the iterator has nothing more. */
int gorch_iter_next_json(uint64_t it, int64_t max, int64_t wait_ms, int32_t *done, char **out, char **err);

/* Cluster client. opts is JSON {"creds", "nkey", "user", "password_file", "tls_ca", "tls_cert",
 * "tls_key", "timeout_s"}, the CLI's connection flags. */
int gorch_client_open(const char *url, const char *opts, uint64_t *h, char **err);
int gorch_client_submit(uint64_t c, const char *spec, int64_t len, const char *priority, char **ids, char **err);
int gorch_client_sweep(uint64_t c, const char *sweep, int64_t len, char **ids, char **err);
int gorch_client_status(uint64_t c, const char *run, char **out, char **err);
int gorch_client_cancel(uint64_t c, const char *run, char **err);
/* wait: up to wait_ms for the run to end with its records final (the run
 * state's records_final); *done = 1 then. *out is the run's state. */
int gorch_client_wait(uint64_t c, const char *run, int64_t wait_ms, int32_t *done, char **out, char **err);
/* follow: an iterator of metric points ({"attempt","step","name","value","time"})
 * for gorch_iter_next_json; with follow = 0 it ends at the newest point. */
int gorch_client_follow(uint64_t c, const char *run, int32_t follow, uint64_t *it, char **err);

/* Graph plans, for the torch.compile backend (python/gorch/compile). A graph
 * is JSON (internal/plan): {"inputs": [{"dtype", "shape", "strides"}...],
 * "nodes": [{"op": "aten.addmm.default", "args": [...], "out": [...]}...],
 * "outputs": [{"ref", "i"}...]}. ops: *out is the JSON list of the ATen
 * operators plans run. check: *out is a JSON list giving, per node, why no
 * plan can run it ("" if one can); sizes may be -1 (symbolic) there. compile:
 * a plan for concrete input and output layouts (shapes and strides are fixed
 * by the graph, so a run passes pointers only); *info is {"random": bool}
 * (true: pass a fresh seed to each run). run: ptrs holds n = inputs + outputs
 * data pointers in the graph's order, to memory laid out as the graph says;
 * inputs are read and outputs written in place during the call (float32 as
 * is; integer and bool tensors converted, exact up to 2^24). */
int gorch_plan_ops(char **out, char **err);
int gorch_plan_check(const char *graph, char **out, char **err);
int gorch_plan_compile(const char *graph, uint64_t *h, char **info, char **err);
int gorch_plan_run(uint64_t plan, void *const *ptrs, int64_t n, uint64_t seed, char **err);
/* Datasets, as a run trains on them (pkg/train.Datasets). spec is a run spec
 * (JSON or YAML, as gorch train --config takes); split is "train" or "test".
 * open: *info is {"split", "dataset", "len", "x_shape", "x_dtype", "y_shape"};
 * x_dtype "int64" says the inputs are token ids. read: copies the split's
 * inputs and labels (as float32, row-major; labels are class indices or
 * token ids) into the caller's arrays of nx and ny floats, which
 * must be the shapes' sizes. */
int gorch_dataset_open(const char *spec, const char *split, uint64_t *h, char **info, char **err);
int gorch_dataset_read(uint64_t h, float *x, int64_t nx, float *y, int64_t ny, char **err);
/* The number of threads gorch's kernels use in this process (also GOMAXPROCS). */
int gorch_set_num_threads(int32_t n, char **err);

#endif
