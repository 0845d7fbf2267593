package tests

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// histAt is a time t milliseconds after an arbitrary start.
func histAt(t int) time.Time {
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(t) * time.Millisecond)
}

// histGood is a small history that is right: on rows 1 and 2 (both at version 1, value 0, empty trail),
// a1 moves row 1 to 2 (+1); b1 conflicts on row 1; a2 moves rows 1 and 2 (bulk, +2 and +3); c1 ended in
// an error but its write of row 2 is stored; d1 ended in an error and is not stored; e1 was aborted.
func histGood() (ops []histOp, initial, final map[uint]FaultRow) {
	ops = []histOp{
		{Token: "a1", Kind: "single", Outcome: histOK, Start: histAt(0), End: histAt(10),
			Writes: []histWrite{{Row: 1, Read: 1, Delta: 1, NewVersion: 2}}},
		{Token: "b1", Kind: "single", Outcome: histConflict, Start: histAt(5), End: histAt(12),
			Writes: []histWrite{{Row: 1, Read: 1, Delta: 5}}},
		{Token: "a2", Kind: "bulk", Outcome: histOK, Start: histAt(20), End: histAt(30),
			Writes: []histWrite{{Row: 1, Read: 2, Delta: 2, NewVersion: 3}, {Row: 2, Read: 1, Delta: 3, NewVersion: 2}}},
		{Token: "c1", Kind: "single", Outcome: histError, Start: histAt(31), End: histAt(40),
			Writes: []histWrite{{Row: 2, Read: 2, Delta: 4}}},
		{Token: "d1", Kind: "single", Outcome: histError, Start: histAt(41), End: histAt(50),
			Writes: []histWrite{{Row: 1, Read: 3, Delta: 7}}},
		{Token: "e1", Kind: "tx", Outcome: histAborted, Start: histAt(41), End: histAt(50),
			Writes: []histWrite{{Row: 2, Read: 3, Delta: 9}}},
	}
	initial = map[uint]FaultRow{1: {ID: 1, Version: 1}, 2: {ID: 2, Version: 1}}
	final = map[uint]FaultRow{
		1: {ID: 1, Value: 3, Trail: "a1,a2,", Version: 3},
		2: {ID: 2, Value: 7, Trail: "a2,c1,", Version: 3},
	}
	return ops, initial, final
}

func TestHistCheckAcceptsARightHistory(t *testing.T) {
	ops, initial, final := histGood()
	r := histCheck(ops, initial, final)
	assert.Empty(t, r.Contradictions)
	assert.True(t, r.ok(), "%s", r)
	assert.Equal(t, histReport{Ops: 6, Acknowledged: 2, Conflicts: 1, Aborted: 1, Errors: 2, ErrorsStored: 1,
		ByKind: r.ByKind}, r)
	assert.Equal(t, 1, r.ByKind["single"][histConflict])
}

// A checker that cannot fail is worthless: each case breaks the right history in one way, and the
// checker must say so, in words that name what is wrong.
func TestHistCheckFindsWhatIsWrong(t *testing.T) {
	cases := []struct {
		name  string
		spoil func(ops []histOp, initial, final map[uint]FaultRow)
		lost  int
		want  string // in a contradiction; empty when only Lost counts
	}{
		{"an acknowledged write lost (another write of the same version won)", func(ops []histOp, _, final map[uint]FaultRow) {
			// b1 read version 1 too; had the lock let it through, it would have replaced a1.
			ops[1].Outcome, ops[1].Writes[0].NewVersion = histOK, 2
			final[1] = FaultRow{ID: 1, Value: 7, Trail: "b1,a2,", Version: 3}
		}, 1, ""},
		{"an acknowledged write missing, the version and value with it", func(_ []histOp, _, final map[uint]FaultRow) {
			final[1] = FaultRow{ID: 1, Value: 2, Trail: "a2,", Version: 2}
		}, 1, "read version 2 but the write before it left version 1"},
		{"a conflicted call left its write", func(_ []histOp, _, final map[uint]FaultRow) {
			final[1] = FaultRow{ID: 1, Value: 8, Trail: "a1,a2,b1,", Version: 4}
		}, 0, "ended in conflict but its write is stored"},
		{"an aborted call left its write", func(_ []histOp, _, final map[uint]FaultRow) {
			final[2] = FaultRow{ID: 2, Value: 16, Trail: "a2,c1,e1,", Version: 4}
		}, 0, "ended in aborted but its write is stored"},
		{"a write stored twice", func(_ []histOp, _, final map[uint]FaultRow) {
			final[1] = FaultRow{ID: 1, Value: 4, Trail: "a1,a1,a2,", Version: 4}
		}, 0, "stored twice"},
		{"a write of no call", func(_ []histOp, _, final map[uint]FaultRow) {
			final[1] = FaultRow{ID: 1, Value: 3, Trail: "a1,a2,zz,", Version: 4}
		}, 0, "of no call in the history"},
		{"a stored value that is not the sum of the stored writes", func(_ []histOp, _, final map[uint]FaultRow) {
			row := final[1]
			row.Value = 4
			final[1] = row
		}, 0, "stored value 4, but the stored writes add up to 3"},
		{"a stored version that is not the count of the stored writes", func(_ []histOp, _, final map[uint]FaultRow) {
			row := final[2]
			row.Version = 5
			final[2] = row
		}, 0, "stored version 5"},
		{"an acknowledged version other than the stored one", func(ops []histOp, _, _ map[uint]FaultRow) {
			ops[2].Writes[1].NewVersion = 7
		}, 0, "acknowledged at version 7 but is stored as version 2"},
		{"a bulk call half-written", func(ops []histOp, _, final map[uint]FaultRow) {
			ops[4].Writes = append(ops[4].Writes, histWrite{Row: 2, Read: 3, Delta: 1})
			final[1] = FaultRow{ID: 1, Value: 10, Trail: "a1,a2,d1,", Version: 4}
		}, 0, "stored in 1 of its 2 rows (half-written)"},
		{"an acknowledged bulk call half-written", func(_ []histOp, _, final map[uint]FaultRow) {
			final[2] = FaultRow{ID: 2, Value: 4, Trail: "c1,", Version: 2}
		}, 1, "read version 2 but the write before it left version 1"},
		{"a version that went back in real time", func(ops []histOp, _, _ map[uint]FaultRow) {
			// a2 (version 3 of row 1) was acknowledged before a1 (version 2) began.
			ops[0].Start, ops[0].End = histAt(35), histAt(36)
		}, 0, "a version went back"},
		{"the trail rewound", func(_ []histOp, initial, _ map[uint]FaultRow) {
			initial[1] = FaultRow{ID: 1, Version: 1, Trail: "x,"}
		}, 2, "the trail it started with is gone"},
		{"a row gone", func(_ []histOp, _, final map[uint]FaultRow) {
			delete(final, 2)
		}, 1, "row 2 was there at the start and is gone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ops, initial, final := histGood()
			c.spoil(ops, initial, final)
			r := histCheck(ops, initial, final)
			assert.False(t, r.ok(), "the checker must complain")
			assert.Equal(t, c.lost, r.Lost, "lost")
			if c.want != "" {
				assert.True(t, histSays(r.Contradictions, c.want), "got %q, want one saying %q", r.Contradictions, c.want)
			} else {
				assert.Empty(t, r.Contradictions)
			}
		})
	}
}

func histSays(list []string, part string) bool {
	for _, s := range list {
		if strings.Contains(s, part) {
			return true
		}
	}
	return false
}
