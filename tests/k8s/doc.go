//go:build k8s

// Package k8s tests the Kubernetes deployment in deploy/k8s: the Helm chart and the
// Kustomize overlays render, pass kubeconform and a real kube-apiserver, and actually run.
// It needs the tools scripts/setup.sh builds (GORCH_SETUP_TEST_TOOLS=1) and is behind the
// build tag k8s, so that a plain `go test ./...` stays fast; scripts/test.sh runs it:
//
//	go test -tags k8s -count=1 ./tests/k8s/
//
// The renders (see renders): helm-default and helm-prod (the chart with values.yaml and
// values-prod.yaml), helm-auth (prod with per-role NATS credentials), kustomize-dev and
// kustomize-prod (the overlays).
//
//	TestHelmLint          helm lint, default and prod values.
//	TestBadValues         values that cannot work (2 NATS servers, replicas-3 streams on
//	                      one server, secrets.create without keys) fail with one line.
//	TestKubeconform       every render against the Kubernetes 1.32 schemas (PyPI
//	                      kubernetes-validate) and the CRDs' (KEDA, prometheus-operator),
//	                      -strict, 0 errors.
//	TestKustomizeBase     deploy/k8s/kustomize/base is the chart rendered with defaults
//	                      (-update rewrites it).
//	TestProdOverlay       the prod overlay renders the same objects as helm-prod.
//	TestNoPlainSecrets    S3 keys and NATS credentials given as random values appear only
//	                      in Secrets: never in args, plain env or ConfigMaps.
//	TestAPIServer         etcd + kube-apiserver + controller-manager + scheduler + kwok:
//	                      every render applied server-side (dry run, then for real) in a
//	                      namespace enforcing Pod Security "restricted"; the Deployments
//	                      and StatefulSets reach their replica counts on fake nodes.
//	TestLauncher          the prod render's Deployments/StatefulSets/Jobs run as processes
//	                      (commands, args, env resolved as a kubelet would; the workers
//	                      in the image under podman): the setup Job makes replicas-3
//	                      streams on 3 NATS servers while the services wait for them
//	                      (none restarts), and a 4-run sweep succeeds with
//	                      nothing lost; without NATS auth and with per-role credentials
//	                      from gorch auth init.
//	TestImage             scripts/image.sh twice: the same digest; podman runs it.
package k8s
