package tests

// A history checker for the fault runs, in the manner of Jepsen: every client records each call it
// made and what it saw, and at the end the history is checked against what the database holds.
//
// The rows written carry their own witness. A FaultRow has a trail: the tokens of every call that
// wrote it, in order. A call reads the row, adds its delta to the value and appends its token to the
// trail it read, and writes both back under the lock. So the trail is itself a read-modify-write: if
// the lock ever let two writers of one version both succeed, the token of one of them would vanish
// from the trail, and the checker would find an acknowledged write lost. The k-th token of a row's
// trail is the write that moved it to its k-th version after the start.
//
// Everything here is pure (no database): histCheck takes the history and the rows as read at the
// start and the end, so its own tests can feed it bad histories and see it complain.

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// FaultRow is a row the fault runs' writers increment; Trail is the tokens of the calls that wrote
// it, each followed by a comma.
type FaultRow struct {
	ID      uint `gorm:"primaryKey;autoIncrement:false"`
	Value   int
	Trail   string
	Version int
}

func (FaultRow) TableName() string { return "fault_rows" }

// histOutcome is what a client saw a call end with.
type histOutcome int

const (
	// histOK: acknowledged. Every row of the call must hold its write, at the version the call saw.
	histOK histOutcome = iota
	// histConflict: the lock refused the write. Nothing of it may be stored.
	histConflict
	// histAborted: the database aborted the transaction (deadlock, serialization or certification
	// failure). Nothing of it may be stored.
	histAborted
	// histError: any other error (a lost connection, a deadline). Indeterminate: a COMMIT may have
	// reached the server before the error; the write may be stored, but only whole.
	histError
)

func (o histOutcome) String() string {
	return [...]string{"ok", "conflict", "aborted", "error"}[o]
}

// histWrite is one row of a call: the version the caller read, what it added to the value, and on
// success the version the library reported back (the struct's version after the call).
type histWrite struct {
	Row        uint
	Read       int // version read before the write
	Delta      int
	NewVersion int // version after the write, as the caller's struct says; for histOK only
}

// histOp is one call: its token (the text it appended to each row's trail), its writes, and how it
// ended.
type histOp struct {
	Token      string
	Client     int
	Kind       string // what the call was (single, bulk, each, ...), for the report
	Writes     []histWrite
	Outcome    histOutcome
	Err        string
	Start, End time.Time
}

// histUnread is a call that never wrote because its read failed: nothing of it can be stored, so
// the checker ignores it, but what the client saw is kept for the report.
type histUnread struct {
	Client int
	Err    string
	At     time.Time
}

// histLog collects the calls of many clients; safe for concurrent use.
type histLog struct {
	mu      sync.Mutex
	ops     []histOp
	unreads []histUnread
	seq     map[int]int
}

// unread records a call of client whose read failed with err.
func (h *histLog) unread(client int, err error) {
	msg := "(no error)"
	if err != nil {
		msg = err.Error()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.unreads = append(h.unreads, histUnread{Client: client, Err: msg, At: time.Now()})
}

// allUnread is every failed read recorded.
func (h *histLog) allUnread() []histUnread {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]histUnread(nil), h.unreads...)
}

// token is a new token for client, unique in the log; it holds no comma.
func (h *histLog) token(client int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seq == nil {
		h.seq = map[int]int{}
	}
	h.seq[client]++
	return fmt.Sprintf("c%d.%d", client, h.seq[client])
}

func (h *histLog) add(op histOp) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

func (h *histLog) all() []histOp {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]histOp(nil), h.ops...)
}

// histReport is what the checker found.
type histReport struct {
	Ops, Acknowledged, Conflicts, Aborted, Errors int
	ErrorsStored                                  int      // indeterminate calls whose write is stored (whole)
	Lost                                          int      // acknowledged row writes missing from the database
	Contradictions                                []string // anything else the database and the history cannot both be right about
	ByKind                                        map[string]map[histOutcome]int
}

// ok is true when nothing was lost and nothing contradicts.
func (r histReport) ok() bool { return r.Lost == 0 && len(r.Contradictions) == 0 }

func (r histReport) String() string {
	var kinds []string
	for k := range r.ByKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "operations %d: acknowledged %d, conflicts %d, aborted %d, errors %d (of which stored %d); lost %d, contradictions %d",
		r.Ops, r.Acknowledged, r.Conflicts, r.Aborted, r.Errors, r.ErrorsStored, r.Lost, len(r.Contradictions))
	for _, k := range kinds {
		c := r.ByKind[k]
		fmt.Fprintf(&b, "\n  %-12s ok %d, conflict %d, aborted %d, error %d", k, c[histOK], c[histConflict], c[histAborted], c[histError])
	}
	return b.String()
}

// histTrail splits a trail into its tokens.
func histTrail(trail string) []string {
	return strings.FieldsFunc(trail, func(r rune) bool { return r == ',' })
}

// histCheck checks ops against the rows as they were before the first call (initial) and after the
// last (final), both by id. It finds:
//   - lost: an acknowledged write whose token is not in its row's trail;
//   - a token stored twice in one row, or stored but of no call of the history;
//   - a conflicted or aborted call that left a write, or an indeterminate call stored in some of its
//     rows and not others (half-written);
//   - a stored write at another version than its place in the trail says, or that read another
//     version than the write before it left (an update the lock should have refused), or an
//     acknowledged call whose reported version is not the one stored;
//   - a stored version or value other than the trail accounts for (counters: the stored value is the
//     initial one plus the deltas of exactly the stored writes, so the acknowledged increments and
//     the stored indeterminate ones);
//   - versions going back in real time: an acknowledged write that ended before another began has the
//     lower version of the two, on every row they share.
func histCheck(ops []histOp, initial, final map[uint]FaultRow) histReport {
	r := histReport{Ops: len(ops), ByKind: map[string]map[histOutcome]int{}}
	bad := func(format string, args ...any) {
		r.Contradictions = append(r.Contradictions, fmt.Sprintf(format, args...))
	}
	byToken := map[string]*histOp{}
	for i := range ops {
		op := &ops[i]
		if byToken[op.Token] != nil {
			bad("token %s used by two calls", op.Token)
		}
		byToken[op.Token] = op
		if r.ByKind[op.Kind] == nil {
			r.ByKind[op.Kind] = map[histOutcome]int{}
		}
		r.ByKind[op.Kind][op.Outcome]++
		switch op.Outcome {
		case histOK:
			r.Acknowledged++
		case histConflict:
			r.Conflicts++
		case histAborted:
			r.Aborted++
		case histError:
			r.Errors++
		}
	}

	// stored[token][row] is the write's place in the row's trail (1-based).
	stored := map[string]map[uint]int{}
	for id, row := range final {
		start, ok := initial[id]
		if !ok {
			bad("row %d is stored but was not there at the start", id)
			continue
		}
		tokens := histTrail(row.Trail)
		prefix := histTrail(start.Trail)
		if len(tokens) < len(prefix) || !slices.Equal(tokens[:len(prefix)], prefix) {
			bad("row %d: the trail it started with is gone (a write rewound it)", id)
			continue
		}
		value := start.Value
		for k, tok := range tokens[len(prefix):] {
			place := k + 1
			if stored[tok] == nil {
				stored[tok] = map[uint]int{}
			}
			if stored[tok][id] != 0 {
				bad("row %d: call %s is stored twice (places %d and %d)", id, tok, stored[tok][id], place)
				continue
			}
			stored[tok][id] = place
			op := byToken[tok]
			if op == nil {
				bad("row %d: stored write %s is of no call in the history", id, tok)
				continue
			}
			w, found := histWriteOf(op, id)
			if !found {
				bad("row %d: call %s is stored in a row it did not write", id, tok)
				continue
			}
			if op.Outcome == histConflict || op.Outcome == histAborted {
				bad("row %d: call %s ended in %s but its write is stored", id, tok, op.Outcome)
			}
			if want := start.Version + place - 1; w.Read != want {
				bad("row %d: call %s read version %d but the write before it left version %d (an update the lock should have refused)", id, tok, w.Read, want)
			}
			if op.Outcome == histOK && w.NewVersion != start.Version+place {
				bad("row %d: call %s was acknowledged at version %d but is stored as version %d", id, tok, w.NewVersion, start.Version+place)
			}
			value += w.Delta
		}
		if want := start.Version + len(tokens) - len(prefix); row.Version != want {
			bad("row %d: stored version %d, but the trail holds %d writes since version %d", id, row.Version, len(tokens)-len(prefix), start.Version)
		}
		if row.Value != value {
			bad("row %d: stored value %d, but the stored writes add up to %d", id, row.Value, value)
		}
	}
	for id := range initial {
		if _, ok := final[id]; !ok {
			bad("row %d was there at the start and is gone", id)
		}
	}

	for i := range ops {
		op := &ops[i]
		rows := stored[op.Token]
		switch op.Outcome {
		case histOK:
			for _, w := range op.Writes {
				if rows[w.Row] == 0 {
					r.Lost++
				}
			}
		case histError:
			if len(rows) > 0 {
				r.ErrorsStored++
				if len(rows) != len(op.Writes) {
					bad("call %s ended in an error and is stored in %d of its %d rows (half-written)", op.Token, len(rows), len(op.Writes))
				}
			}
		}
	}

	histCheckRealTime(ops, stored, bad)
	return r
}

// histCheckRealTime: per row, the stored acknowledged writes in version order; none may have ended
// before a write of a lower version began.
func histCheckRealTime(ops []histOp, stored map[string]map[uint]int, bad func(string, ...any)) {
	type placed struct {
		op    *histOp
		place int
	}
	perRow := map[uint][]placed{}
	for i := range ops {
		op := &ops[i]
		if op.Outcome != histOK {
			continue
		}
		for row, place := range stored[op.Token] {
			perRow[row] = append(perRow[row], placed{op, place})
		}
	}
	for row, list := range perRow {
		sort.Slice(list, func(i, j int) bool { return list[i].place < list[j].place })
		var latest *histOp // of the writes so far, the one that began last
		for _, p := range list {
			if latest != nil && p.op.End.Before(latest.Start) {
				bad("row %d: call %s (stored at place %d) was acknowledged at %s, before call %s of a lower version began at %s: a version went back",
					row, p.op.Token, p.place, p.op.End.Format(time.StampMicro), latest.Token, latest.Start.Format(time.StampMicro))
			}
			if latest == nil || p.op.Start.After(latest.Start) {
				latest = p.op
			}
		}
	}
}

func histWriteOf(op *histOp, row uint) (histWrite, bool) {
	for _, w := range op.Writes {
		if w.Row == row {
			return w, true
		}
	}
	return histWrite{}, false
}
