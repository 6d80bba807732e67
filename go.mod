module github.com/gorch/gorch

go 1.26
