// Package train is gorch's training loop: it builds a model, feeds it
// batches from a dataset, steps an optimizer and evaluates on a held-out
// split. The same loop serves `gorch train` and, later, cluster workers.
package train
