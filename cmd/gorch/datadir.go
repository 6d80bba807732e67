package main

// dataDirFlag is the root of the record store (--data-dir).
var dataDirFlag string
