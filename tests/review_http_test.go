package tests

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/go-optlock/optlock/optlockhttp"
)

// TestReviewIfMatchUpdatesBodyWithVersion: IfMatch promises that "the row's lock values are taken
// from If-Match, whatever the struct (the request's body) holds". A handler that writes the decoded
// body onto the row named by the URL, db.Scopes(IfMatch(r)).Model(&HttpItem{ID: id}).Updates(&body),
// with the body carrying the version the client read (as a JSON resource does) and If-Match its
// current tag, is refused with 400: checkWrittenValues runs in prepare before the expectation is
// applied, and compares the body's version with the Model's zero one. The same with Save, which
// ignores the body's version, goes ahead.
func TestReviewIfMatchUpdatesBodyWithVersion(t *testing.T) {
	eachHTTPDB(t, func(t *testing.T, c configured) {
		seedItem(t, c, 7, 3)
		r := request(`"3"`)
		body := HttpItem{Name: "edited", Version: 3} // as decoded from {"name":"edited","version":3}
		err := c.db.Scopes(optlockhttp.IfMatch(r)).Model(&HttpItem{ID: 7}).Updates(&body).Error
		status, _ := statusOf(r, err)
		require.Equal(t, http.StatusOK, status, "If-Match holds the current tag: %v", err)
		got, ok := storedItem(t, c, 7)
		require.True(t, ok)
		require.Equal(t, "edited", got.Name)
		require.Equal(t, int64(4), got.Version)
	})
}

// TestIfMatchUpdatesIgnoresTheBodysVersion: under IfMatch, Updates(&body) is checked against the
// header alone: a stale header with the body's current version is 412 with nothing written, and a
// current header with any version in the body writes, the lock advanced from what is stored.
func TestIfMatchUpdatesIgnoresTheBodysVersion(t *testing.T) {
	eachHTTPDB(t, func(t *testing.T, c configured) {
		seedItem(t, c, 8, 5)
		r := request(`"4"`)
		err := c.db.Scopes(optlockhttp.IfMatch(r)).Model(&HttpItem{ID: 8}).Updates(&HttpItem{Name: "stale header", Version: 5}).Error
		status, _ := statusOf(r, err)
		require.Equal(t, http.StatusPreconditionFailed, status, "err %v", err)
		got, _ := storedItem(t, c, 8)
		require.Equal(t, HttpItem{ID: 8, Name: "seed", Version: 5}, got)

		r = request(`"5"`)
		require.NoError(t, c.db.Scopes(optlockhttp.IfMatch(r)).Model(&HttpItem{ID: 8}).Updates(&HttpItem{Name: "any body version", Version: 99}).Error)
		got, _ = storedItem(t, c, 8)
		require.Equal(t, HttpItem{ID: 8, Name: "any body version", Version: 6}, got)
		c.requireIdle(t)
	})
}
