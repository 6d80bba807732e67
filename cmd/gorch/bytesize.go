package main

import (
	"fmt"
	"strconv"
	"strings"
)

// byteSize is a flag value of bytes: a plain number, or one with a unit
// (KB, MB, GB, TB: powers of 1000; KiB, MiB, GiB, TiB: of 1024), e.g.
// "512MiB" or "1.5GB"; "-1" where a flag allows it means no limit.
type byteSize int64

var byteUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1},
}

func (b *byteSize) Set(s string) error {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range byteUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < -1 || v*mult > 1<<62 {
		return fmt.Errorf("%q is not a size (e.g. 512MiB, 2GB, or a number of bytes)", s)
	}
	*b = byteSize(v * mult)
	return nil
}

func (b *byteSize) String() string {
	if *b <= 0 {
		return strconv.FormatInt(int64(*b), 10)
	}
	return fmtBytes(int64(*b))
}

func (b *byteSize) Type() string { return "size" }
