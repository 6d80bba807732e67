# Convenience targets; the README's two commands work without make.
.PHONY: demo test bench bench-avx2 bench-cluster gobench build fuzz test-faults image test-k8s
build:
	go build -o bin/gorch ./cmd/gorch
demo:
	./scripts/demo.sh
test:
	./scripts/test.sh
bench:          # gorch vs PyTorch side by side (BENCH_QUICK=1: quick mode); see bench/README.md
	./bench/run.sh
bench-avx2:     # make bench with both sides as on an AVX2-only CPU (gorch avx2, MKL/ATen AVX2); writes bench/results-avx2.json
	BENCH_AVX2=1 ./bench/run.sh
bench-cluster:  # dispatch and metrics-ingest throughput on an embedded NATS (-quick: small); writes bench/cluster-results.json
	go run ./bench/cmd/clusterbench
gobench:        # Go micro-benchmarks only
	go test -run '^$$' -bench . -benchtime 1s ./pkg/... ./internal/...
FUZZTIME ?= 60s
fuzz:           # every decoder's fuzz target, $(FUZZTIME) each (crashers land in the package's testdata/fuzz)
	go test -run '^$$' -fuzz '^FuzzDecodeCheckpoint$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 1x ./pkg/experiment/
	go test -run '^$$' -fuzz '^FuzzWireDecode$$' -fuzztime $(FUZZTIME) ./internal/cluster/
	go test -run '^$$' -fuzz '^FuzzKVValues$$' -fuzztime $(FUZZTIME) ./internal/cluster/
test-faults:    # fault-injection + cluster integration tests (real NATS, versitygw, gorch processes)
	go test -count=1 -v -run 'Fault|Cluster' ./tests/integration/
image:         # the gorch image as an OCI archive, without Docker: bin/gorch-image.tar (reproducible)
	./scripts/image.sh
test-k8s:      # deploy/k8s: helm, kustomize, kubeconform, a real API server, the manifests as processes, the image
	bash -c 'GORCH_SETUP_TEST_TOOLS=1 . scripts/setup.sh && go test -tags k8s -count=1 -v ./tests/k8s/'
