package experiment

import "math"

// supersession decides which of a run's metric values are in force, from
// the resume steps of its attempts ([Run].Attempts): one value per (step,
// name).
//
//   - A value of attempt a at step s is superseded when a later attempt
//     resumed from a checkpoint before s (its ResumeStep < s): that
//     attempt trained step s again, or will, or abandoned it.
//   - At a step that is some later attempt's resume step, both may have
//     logged the name (an evaluation at the end of an epoch runs after the
//     checkpoint, so a resumed attempt repeats it): the latest attempt's
//     value wins.
//
// Attempts without an entry supersede nothing (records written before
// resume steps were recorded read as they were stored).
type supersession struct {
	minResume []int64        // by attempt: the smallest resume step of a later attempt
	bounds    map[int64]bool // the resume steps of attempts after the first
	resumes   map[int]int64  // attempt -> resume step
}

func newSupersession(attempts []Attempt) *supersession {
	sp := &supersession{bounds: map[int64]bool{}, resumes: map[int]int64{}}
	maxA := 0
	for _, a := range attempts {
		sp.resumes[a.Attempt] = a.ResumeStep
		maxA = max(maxA, a.Attempt)
	}
	sp.minResume = make([]int64, maxA+1)
	for i := range sp.minResume {
		sp.minResume[i] = math.MaxInt64
	}
	for a, r := range sp.resumes {
		if a < 2 {
			continue
		}
		sp.bounds[r] = true
		for i := 0; i < a && i < len(sp.minResume); i++ {
			sp.minResume[i] = min(sp.minResume[i], r)
		}
	}
	return sp
}

// active reports whether any value can be superseded.
func (sp *supersession) active() bool { return len(sp.bounds) > 0 }

// superseded reports whether a later attempt resumed before step s.
func (sp *supersession) superseded(attempt int, s int64) bool {
	return attempt >= 0 && attempt < len(sp.minResume) && s > sp.minResume[attempt]
}

// bound reports whether s is a later attempt's resume step, where the
// latest attempt that logged a name wins.
func (sp *supersession) bound(s int64) bool { return sp.bounds[s] }
