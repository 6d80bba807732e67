# Convenience targets; the README's two commands work without make.
.PHONY: demo test bench build
build:
	go build -o bin/gorch ./cmd/gorch
demo:
	./scripts/demo.sh
test:
	./scripts/test.sh
bench:
	go test -run '^$$' -bench . -benchtime 1s ./pkg/... ./internal/...
