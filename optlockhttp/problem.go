package optlockhttp

import (
	"encoding/json"
	"errors"
	"net/http"

	"gorm.io/gorm"
)

// Problem is the RFC 9457 problem details object [WriteError] writes as application/problem+json.
type Problem struct {
	// Type is "about:blank": the status says what happened.
	Type string `json:"type"`
	// Title is the status's reason phrase.
	Title string `json:"title"`
	// Status is the HTTP status code.
	Status int `json:"status"`
	// Detail says what the client should do.
	Detail string `json:"detail,omitempty"`
	// Instance is the request's path.
	Instance string `json:"instance,omitempty"`
	// Conflicts names the rows of a refused write.
	Conflicts []ProblemConflict `json:"conflicts,omitempty"`
}

// ProblemConflict is one row of a refused write in a [Problem].
type ProblemConflict struct {
	// Key is the row's primary key (an array for a composite key).
	Key any `json:"key"`
	// State is "changed", "deleted" or "unknown".
	State string `json:"state"`
	// ETag is the row's current entity tag, when it was changed.
	ETag string `json:"etag,omitempty"`
}

// The details written for each status: what the client should do next.
const (
	detailConflict     = "the resource changed or was deleted since it was read: read it again (GET), apply the change to what it holds now and send that with its new ETag in If-Match"
	detailNoCondition  = "the resource changed or was deleted since it was read: read it again (GET) and send the change with its ETag in If-Match"
	detailRequired     = "this write needs a precondition: read the resource (GET) and send its ETag in If-Match"
	detailInternal     = "the server could not complete the request: retry later"
	detailExists       = "the resource exists already, and If-None-Match: * asked to create it only if it did not"
	detailFailedWeakly = "If-Match lists only weak entity tags, which never match: send the strong ETag the resource was read with"
)

// WriteError writes err as an RFC 9457 problem+json response with [Status]'s code, and what the
// client should do next in its detail:
//
//   - a conflict is 412 Precondition Failed, or 409 Conflict when the request had no If-Match (the
//     lock values came from elsewhere, see [IfMatchOptional]); its "conflicts" member names each
//     conflicting key and whether the row changed or is gone, and when one row conflicted and it still
//     exists the response's ETag header is that row's current tag;
//   - [ErrPreconditionRequired] is 428 Precondition Required;
//   - bad input (an error wrapping optlock.ErrInvalidLock) is 400 Bad Request, its message the detail;
//   - under If-None-Match: * ([CreateOnly]), gorm.ErrDuplicatedKey is 412: the resource exists;
//   - anything else is 500 Internal Server Error, its message kept out of the response.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	status := Status(err)
	var detail string
	var conflicts []ProblemConflict
	switch status {
	case http.StatusPreconditionFailed:
		detail = detailConflict
		if errors.Is(err, ErrPreconditionFailed) {
			detail = detailFailedWeakly
		}
		if len(r.Header.Values("If-Match")) == 0 {
			status, detail = http.StatusConflict, detailNoCondition
		}
		for _, c := range CurrentLocks(err) {
			pc := ProblemConflict{Key: c.ID, State: "changed", ETag: c.ETag}
			switch {
			case c.Deleted:
				pc.State = "deleted"
			case c.ETag == "":
				pc.State = "unknown"
			}
			conflicts = append(conflicts, pc)
		}
		if tag, ok := CurrentETag(err); ok {
			w.Header().Set("ETag", tag)
		}
	case http.StatusPreconditionRequired:
		detail = detailRequired
	case http.StatusBadRequest:
		detail = err.Error()
	default:
		detail = detailInternal
		if CreateOnly(r) && errors.Is(err, gorm.ErrDuplicatedKey) {
			status, detail = http.StatusPreconditionFailed, detailExists
		}
	}
	writeProblem(w, r, status, detail, conflicts)
}

// writeProblem writes a problem+json response.
func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string, conflicts []ProblemConflict) {
	p := Problem{Type: "about:blank", Title: http.StatusText(status), Status: status, Detail: detail, Conflicts: conflicts}
	if r != nil && r.URL != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(p)
}
