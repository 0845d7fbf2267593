package optlockhttp

import (
	"errors"
	"fmt"
	"net/http"

	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// ErrPreconditionRequired is the error of a write under [IfMatch] whose request had no If-Match
// (HTTP 428 Precondition Required, RFC 6585): the client must read the resource and send its ETag
// back. Nothing is written.
var ErrPreconditionRequired = errors.New("optlockhttp: the request has no If-Match: read the resource and send its ETag in If-Match")

// ErrPreconditionFailed is the error of a write under [IfMatch] whose If-Match lists only weak tags,
// which never match under the strong comparison If-Match uses (HTTP 412). It matches
// optlock.ErrConflict. Nothing is written.
var ErrPreconditionFailed = fmt.Errorf("optlockhttp: If-Match lists only weak entity tags, which never match: %w", optlock.ErrConflict)

// IfMatch is a scope for the write of a row the client read earlier, checked against the request's
// If-Match (RFC 9110 section 13.1.1):
//
//	err := db.Scopes(optlockhttp.IfMatch(r)).Save(&item) // item decoded from the body, its key from the URL
//
// The row's lock values are taken from If-Match, whatever the struct (the request's body) holds, and
// the write is lock-checked (optlock.ExpectLocks) with or without a Guard or WithLock: it goes ahead
// only if the row still holds them, else it fails with an *optlock.OptimisticLockError and writes
// nothing. It never inserts: a row that is gone is a conflict, also for a Save whose body has a zero
// version. A list of tags matches if the row holds any of them (strong comparison: a weak tag never
// matches, and a list of weak tags alone fails with [ErrPreconditionFailed]); "*" matches a row that
// exists, whatever its lock values (optlock.ExpectRow). On success the struct's lock fields hold what is
// now stored, so [ETag] gives the new tag.
//
// Without If-Match the statement fails with [ErrPreconditionRequired]; a field that is not "*" or a
// list of entity tags, a tag this package did not issue, or one that does not fit the model's lock
// fields fails with an error wrapping optlock.ErrInvalidLock. Nothing is written either way.
func IfMatch(r *http.Request) func(*gorm.DB) *gorm.DB {
	return ifMatch(r, true)
}

// IfMatchOptional is [IfMatch] for endpoints where If-Match is optional: with If-Match it is IfMatch;
// without, the write is lock-checked against the lock values the struct holds (optlock.WithLock), a
// version the client sent in the body, say. A conflict then is reported by [WriteError] as 409
// Conflict, as the request carried no precondition. Without If-Match a Save of a row whose key is new
// and whose version is zero inserts it, as optlock's Save does.
func IfMatchOptional(r *http.Request) func(*gorm.DB) *gorm.DB {
	return ifMatch(r, false)
}

func ifMatch(r *http.Request, required bool) func(*gorm.DB) *gorm.DB {
	field, err := parseConditional(r, "If-Match")
	var alternatives [][]optlock.LockValue
	if err == nil && field.present && !field.any {
		for _, t := range field.tags {
			if t.weak {
				continue
			}
			values, perr := ParseETag(t.opaque)
			if perr != nil {
				err = perr
				break
			}
			alternatives = append(alternatives, values)
		}
		if err == nil && len(alternatives) == 0 {
			err = ErrPreconditionFailed
		}
	}
	return func(db *gorm.DB) *gorm.DB {
		switch {
		case err != nil:
			_ = db.AddError(err)
			return db
		case !field.present && required:
			_ = db.AddError(ErrPreconditionRequired)
			return db
		case !field.present:
			return optlock.WithLock()(db)
		case field.any:
			return optlock.ExpectRow()(db)
		}
		return optlock.ExpectLocks(alternatives...)(db)
	}
}

// NotModified sets the ETag header to etag and reports whether the request's If-None-Match already
// holds it (weak comparison, RFC 9110 section 13.1.2): then it has written 304 Not Modified for a GET
// or HEAD, 412 Precondition Failed for any other method, and the handler has nothing more to write.
// An If-None-Match that cannot be parsed is ignored, as if absent.
func NotModified(w http.ResponseWriter, r *http.Request, etag string) bool {
	w.Header().Set("ETag", etag)
	field, err := parseConditional(r, "If-None-Match")
	if err != nil || !field.present || !field.matchesWeakly(etag) {
		return false
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		w.WriteHeader(http.StatusNotModified)
		return true
	}
	writeProblem(w, r, http.StatusPreconditionFailed, "the resource exists and If-None-Match names it", nil)
	return true
}

// CreateOnly reports whether the request asks to create the resource only if it does not exist yet
// (If-None-Match: *, RFC 9110 section 13.1.2), the create-only PUT. The handler then creates the row
// (db.Create, which never overwrites) instead of updating it; an existing row makes Create fail on its
// primary key, which [WriteError] reports as 412 when GORM translates it (gorm.Config{TranslateError:
// true} gives gorm.ErrDuplicatedKey).
func CreateOnly(r *http.Request) bool {
	field, err := parseConditional(r, "If-None-Match")
	return err == nil && field.any
}
