package optlockhttp

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-optlock/optlock"
)

func TestParseConditional(t *testing.T) {
	cases := []struct {
		name  string
		lines []string
		want  conditionalField
		bad   bool
	}{
		{name: "absent"},
		{name: "one tag", lines: []string{`"1"`}, want: conditionalField{present: true, tags: []entityTag{{opaque: `"1"`}}}},
		{name: "weak", lines: []string{`W/"1"`}, want: conditionalField{present: true, tags: []entityTag{{weak: true, opaque: `"1"`}}}},
		{name: "list and lines", lines: []string{`"1",W/"2"`, ` "3" `}, want: conditionalField{present: true, tags: []entityTag{{opaque: `"1"`}, {weak: true, opaque: `"2"`}, {opaque: `"3"`}}}},
		{name: "star", lines: []string{`*`}, want: conditionalField{present: true, any: true}},
		{name: "obs-text inside", lines: []string{"\"\x80\""}, want: conditionalField{present: true, tags: []entityTag{{opaque: "\"\x80\""}}}},
		{name: "star twice", lines: []string{`*, *`}, want: conditionalField{present: true, any: true}},
		{name: "star and tag", lines: []string{`*, "1"`}, bad: true},
		{name: "unquoted", lines: []string{`1`}, bad: true},
		{name: "lower-case weak", lines: []string{`w/"1"`}, bad: true},
		{name: "quote inside", lines: []string{`"1"2"`}, bad: true},
		{name: "control inside", lines: []string{"\"1\x01\""}, bad: true},
		{name: "no comma", lines: []string{`"1" "2"`}, bad: true},
		{name: "only commas", lines: []string{` , ,`}, bad: true},
		{name: "too long", lines: []string{`"` + strings.Repeat("1", maxHeaderBytes) + `"`}, bad: true},
		{name: "too many", lines: []string{strings.TrimSuffix(strings.Repeat(`"1",`, maxTags+1), ",")}, bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPut, "/", nil)
			for _, l := range tc.lines {
				r.Header.Add("If-Match", l)
			}
			got, err := parseConditional(r, "If-Match")
			if tc.bad {
				require.ErrorIs(t, err, optlock.ErrInvalidLock)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestETagRoundTrip(t *testing.T) {
	cases := [][]optlock.LockValue{
		{{Int: 0}},
		{{Int: 7}},
		{{Int: -3}},
		{{IsTime: true, Time: time.Date(2026, 3, 1, 12, 34, 56, 789_123_456, time.UTC)}},
		{{IsTime: true, Time: time.Date(2026, 3, 1, 12, 34, 56, 0, time.UTC)}},
		{{IsTime: true}},
		{{Int: 7}, {IsTime: true, Time: time.Date(2026, 3, 1, 12, 34, 56, 100_000_000, time.UTC)}},
	}
	for _, values := range cases {
		tag := FormatETag(values)
		got, err := ParseETag(tag)
		require.NoError(t, err, tag)
		for i := range values {
			assert.Equal(t, values[i].Int, got[i].Int, tag)
			assert.Equal(t, values[i].IsTime, got[i].IsTime, tag)
			assert.True(t, values[i].Time.Equal(got[i].Time), "%s: got %v", tag, got[i].Time)
		}
		assert.Equal(t, tag, FormatETag(got), "canonical")
	}
	// A time in another zone has the tag of its instant.
	east := time.Date(2026, 3, 1, 20, 34, 56, 0, time.FixedZone("east", 8*3600))
	assert.Equal(t, `"2026-03-01T12:34:56Z"`, FormatETag([]optlock.LockValue{{IsTime: true, Time: east}}))
}

func TestParseETagRefusesWhatItNeverWrites(t *testing.T) {
	for _, tag := range []string{``, `"`, `""`, `7`, `W/"7"`, `"07"`, `"+7"`, `"7/"`, `"/7"`, `"1/2/3/4/5/6/7/8/9"`,
		`"2026-03-01T12:34:56.700Z"`, `"2026-03-01T12:34:56+01:00"`, `"2026-03-01T12:34:56z"`, `"2026-03-01 12:34:56Z"`, `"x"`} {
		_, err := ParseETag(tag)
		assert.ErrorIs(t, err, optlock.ErrInvalidLock, "%q", tag)
	}
}

func TestStatus(t *testing.T) {
	cases := []struct {
		err  error
		want int
	}{
		{nil, http.StatusOK},
		{&optlock.OptimisticLockError{}, http.StatusPreconditionFailed},
		{ErrPreconditionFailed, http.StatusPreconditionFailed},
		{ErrPreconditionRequired, http.StatusPreconditionRequired},
		{invalidf("x"), http.StatusBadRequest},
		{errors.New("connection refused"), http.StatusInternalServerError},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, Status(tc.err), "%v", tc.err)
	}
}

func TestWriteError(t *testing.T) {
	conflict := &optlock.OptimisticLockError{Table: "items", ConflictIDs: []any{1}, Rows: []optlock.RowConflict{{ID: 1, Current: map[string]any{"version": int64(4)}, Locks: []optlock.LockValue{{Column: "version", Int: 4}}}}}
	cases := []struct {
		name    string
		ifMatch string
		err     error
		status  int
		etag    string
		body    string
	}{
		{"a conflict", `"3"`, conflict, 412, `"4"`, `"conflicts":[{"key":1,"state":"changed","etag":"\"4\""}]`},
		{"a conflict without If-Match", "", conflict, 409, `"4"`, `"status":409`},
		{"a deleted row", `"3"`, &optlock.OptimisticLockError{ConflictIDs: []any{1}, Rows: []optlock.RowConflict{{ID: 1, Deleted: true}}}, 412, "", `"state":"deleted"`},
		{"no If-Match", "", ErrPreconditionRequired, 428, "", `"title":"Precondition Required"`},
		{"bad input", `"x"`, invalidf("bad tag"), 400, "", `bad tag`},
		{"internal", `"3"`, errors.New("secret dsn"), 500, "", `"status":500`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPut, "/items/1", nil)
			if tc.ifMatch != "" {
				r.Header.Set("If-Match", tc.ifMatch)
			}
			w := httptest.NewRecorder()
			WriteError(w, r, tc.err)
			assert.Equal(t, tc.status, w.Code)
			assert.Equal(t, tc.etag, w.Header().Get("ETag"))
			assert.Equal(t, "application/problem+json", w.Header().Get("Content-Type"))
			assert.Contains(t, w.Body.String(), tc.body)
			assert.Contains(t, w.Body.String(), `"instance":"/items/1"`)
			assert.NotContains(t, w.Body.String(), "secret")
		})
	}
}

func TestNotModifiedAndCreateOnly(t *testing.T) {
	cases := []struct {
		method, ifNoneMatch string
		notModified         bool
		status              int
		createOnly          bool
	}{
		{http.MethodGet, `"7"`, true, 304, false},
		{http.MethodGet, `W/"7"`, true, 304, false}, // weak comparison
		{http.MethodHead, `"1", "7"`, true, 304, false},
		{http.MethodGet, `"8"`, false, 200, false},
		{http.MethodGet, `*`, true, 304, true},
		{http.MethodPut, `*`, true, 412, true},
		{http.MethodGet, `"7`, false, 200, false}, // unparsable: ignored
		{http.MethodGet, ``, false, 200, false},
	}
	for _, tc := range cases {
		r := httptest.NewRequest(tc.method, "/items/1", nil)
		if tc.ifNoneMatch != "" {
			r.Header.Set("If-None-Match", tc.ifNoneMatch)
		}
		w := httptest.NewRecorder()
		assert.Equal(t, tc.notModified, NotModified(w, r, `"7"`), "%s %s", tc.method, tc.ifNoneMatch)
		assert.Equal(t, tc.status, w.Code, "%s %s", tc.method, tc.ifNoneMatch)
		assert.Equal(t, `"7"`, w.Header().Get("ETag"))
		assert.Equal(t, tc.createOnly, CreateOnly(r), "%s %s", tc.method, tc.ifNoneMatch)
	}
}
