package tests

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-optlock/optlock/optlockhttp"
)

// TestHTTPIfMatchOptional: on an endpoint where If-Match is optional, a request without it is checked
// against the version in its body (a stale one is 409 Conflict, nothing written), a request with it is
// checked against the header whatever the body says, and a Save of a new key with a zero version
// inserts, as optlock's Save does. Every result is read back through the observer pool.
func TestHTTPIfMatchOptional(t *testing.T) {
	cases := []struct {
		name        string
		ifMatch     []string
		id          uint
		bodyVersion int64
		want        int
		stored      HttpItem // zero ID: the row must not exist
	}{
		{"no If-Match, the body's current version", nil, 1, 5, http.StatusOK, HttpItem{ID: 1, Name: "written", Version: 6}},
		{"no If-Match, a stale version in the body", nil, 1, 4, http.StatusConflict, HttpItem{ID: 1, Name: "seed", Version: 5}},
		{"If-Match wins over a stale body", []string{`"5"`}, 1, 1, http.StatusOK, HttpItem{ID: 1, Name: "written", Version: 6}},
		{"a stale If-Match over a current body", []string{`"4"`}, 1, 5, http.StatusPreconditionFailed, HttpItem{ID: 1, Name: "seed", Version: 5}},
		{"a malformed If-Match", []string{`4`}, 1, 5, http.StatusBadRequest, HttpItem{ID: 1, Name: "seed", Version: 5}},
		{"no If-Match, a new key at version 0", nil, 9, 0, http.StatusOK, HttpItem{ID: 9, Name: "written", Version: 1}},
		{"If-Match on a new key", []string{`"0"`}, 9, 0, http.StatusPreconditionFailed, HttpItem{}},
	}
	eachHTTPDB(t, func(t *testing.T, c configured) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				require.NoError(t, c.observer.Exec("DELETE FROM http_items").Error)
				seedItem(t, c, 1, 5)
				r := request(tc.ifMatch...)
				body := HttpItem{ID: tc.id, Name: "written", Version: tc.bodyVersion}
				err := c.db.Scopes(optlockhttp.IfMatchOptional(r)).Save(&body).Error
				got, _ := statusOf(r, err)
				assert.Equal(t, tc.want, got, "err %v", err)
				stored, found := storedItem(t, c, tc.id)
				if tc.stored.ID == 0 {
					assert.False(t, found, "nothing inserted: %+v", stored)
				} else {
					assert.Equal(t, tc.stored, stored)
				}
				c.requireIdle(t)
			})
		}
	})
}

// TestHTTPIfMatchOptionalUnguarded: without If-Match, IfMatchOptional alone makes the write of an
// unguarded model lock-checked on the updated_at its body carries: a stale one is 409 with nothing
// written, the one read is written.
func TestHTTPIfMatchOptionalUnguarded(t *testing.T) {
	eachHTTPDB(t, func(t *testing.T, c configured) {
		read := HttpDoc{ID: 1, Title: "seed"}
		require.NoError(t, c.db.Create(&read).Error)
		require.NoError(t, c.db.First(&read, 1).Error)

		stale := HttpDoc{ID: 1, Title: "stale", UpdatedAt: read.UpdatedAt.Add(-time2s)}
		r := request()
		err := c.db.Scopes(optlockhttp.IfMatchOptional(r)).Save(&stale).Error
		got, _ := statusOf(r, err)
		assert.Equal(t, http.StatusConflict, got, "err %v", err)
		var stored HttpDoc
		require.NoError(t, c.observer.First(&stored, 1).Error)
		assert.Equal(t, "seed", stored.Title)

		current := HttpDoc{ID: 1, Title: "current", UpdatedAt: read.UpdatedAt}
		require.NoError(t, c.db.Scopes(optlockhttp.IfMatchOptional(request())).Save(&current).Error)
		require.NoError(t, c.observer.First(&stored, 1).Error)
		assert.Equal(t, "current", stored.Title)
		c.requireIdle(t)
	})
}
