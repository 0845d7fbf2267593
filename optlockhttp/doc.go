// Package optlockhttp carries optlock's lock fields through HTTP as conditional requests (RFC 9110):
// a row's lock values are its strong ETag, a write sends them back in If-Match, and a write whose row
// changed (or is gone) since it was read is refused with 412 Precondition Failed, nothing written.
//
// The flow, for a GET handler and a PUT handler of one resource:
//
//	// GET /items/{id}
//	tag, err := optlockhttp.ETag(db, &item) // after db.First(&item, id)
//	if optlockhttp.NotModified(w, r, tag) {  // sets ETag; 304 when If-None-Match holds it
//		return
//	}
//	json.NewEncoder(w).Encode(item)
//
//	// PUT /items/{id}: the lock values come from If-Match, whatever the body says
//	err := db.Scopes(optlockhttp.IfMatch(r)).Save(&item)
//	if err != nil {
//		optlockhttp.WriteError(w, r, err) // 412 with the current ETag, 428, 400 or 500, as problem+json
//		return
//	}
//	tag, _ := optlockhttp.ETag(db, &item) // the lock fields advanced: the new tag
//
// [IfMatch] works with every write optlock checks (Save, Model(&row).Update(s), UpdateColumn(s),
// Delete, optlock.UpdateSafely), of guarded models and of others alike, and never inserts: a PUT
// with If-Match to a row that is gone is 412, never a new row. The package needs nothing but net/http
// and GORM, so it fits any router that hands a handler an *http.Request and an http.ResponseWriter.
//
// A tag names the lock values of one row, not the row: it is only meaningful with the URL it came
// from. It is opaque to clients; its form is [FormatETag]'s.
package optlockhttp
