package optlockhttp

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// maxTagValues bounds the lock values one tag may carry.
const maxTagValues = 8

// ETag returns the strong entity tag of model's lock values as stored (optlock.LockValues): a
// version, an updated_at at its column's precision, or several lock fields together, quoted as the
// ETag header takes it. model is a pointer to a struct read from db, or just written through it (the
// lock fields then hold what is now stored). The same stored row has the same tag whichever driver
// read it, and in every time zone of the process. An unusable model gives an error wrapping
// optlock.ErrInvalidLock.
func ETag(db *gorm.DB, model any) (string, error) {
	values, err := optlock.LockValues(db, model)
	if err != nil {
		return "", err
	}
	return FormatETag(values), nil
}

// FormatETag returns the strong entity tag of lock values, quoted: each value in order, an integer in
// decimal and a timestamp in RFC 3339 in UTC with no trailing zeros in its fraction, joined by "/".
// One version 7 is "7"; a version and an updated_at, "7/2026-03-01T12:34:56.789Z". The form is
// canonical: equal values always give the same tag, and ParseETag reads back exactly what it wrote.
func FormatETag(values []optlock.LockValue) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, v := range values {
		if i > 0 {
			b.WriteByte('/')
		}
		if v.IsTime {
			b.WriteString(v.Time.UTC().Format(time.RFC3339Nano))
		} else {
			b.WriteString(strconv.FormatInt(v.Int, 10))
		}
	}
	b.WriteByte('"')
	return b.String()
}

// ParseETag reads the lock values back from a strong tag FormatETag wrote, quotes included. Anything
// else (a weak tag, a value not in FormatETag's canonical form, too many values) gives an error
// wrapping optlock.ErrInvalidLock. The values carry no column names: optlock.ExpectLocks matches them
// to the write's lock fields by position.
func ParseETag(tag string) ([]optlock.LockValue, error) {
	if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' {
		return nil, invalidf("entity tag %s is not a quoted strong tag", quoteShort(tag))
	}
	body := tag[1 : len(tag)-1]
	parts := strings.Split(body, "/")
	if len(parts) > maxTagValues {
		return nil, invalidf("entity tag %s carries more than %d values", quoteShort(tag), maxTagValues)
	}
	values := make([]optlock.LockValue, len(parts))
	for i, part := range parts {
		v, ok := parseValue(part)
		if !ok {
			return nil, invalidf("entity tag %s was not issued by this server", quoteShort(tag))
		}
		values[i] = v
	}
	return values, nil
}

// parseValue reads one value of a tag, accepting only FormatETag's canonical form.
func parseValue(s string) (optlock.LockValue, bool) {
	if strings.ContainsRune(s, 'T') {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil || t.Location() != time.UTC || t.Format(time.RFC3339Nano) != s {
			return optlock.LockValue{}, false
		}
		return optlock.LockValue{IsTime: true, Time: t}, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != s {
		return optlock.LockValue{}, false
	}
	return optlock.LockValue{Int: n}, true
}

// invalidf returns an error wrapping optlock.ErrInvalidLock.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", optlock.ErrInvalidLock, fmt.Sprintf(format, args...))
}

// quoteShort quotes s for an error message, cut to a readable length: a header may be huge.
func quoteShort(s string) string {
	const limit = 64
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}
