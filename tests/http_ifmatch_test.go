package tests

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/optlockhttp"
)

// TestHTTPIfMatchSemantics: a Save under IfMatch of a row stored at version 3, for every If-Match
// form RFC 9110 allows and for bad ones: the strong tag of the stored version (alone, in a list, or
// "*") writes and advances the version; another version, or a weak tag (which never matches under
// strong comparison), is 412 with the current ETag; no If-Match is 428; anything malformed (not
// quoted, quotes inside, a foreign or non-canonical tag, a huge field, "*" mixed with tags) is 400.
// Nothing is written unless the status is 200, as read back through another pool.
func TestHTTPIfMatchSemantics(t *testing.T) {
	cases := []struct {
		name    string
		ifMatch []string
		want    int
	}{
		{"the current tag", []string{`"3"`}, http.StatusOK},
		{"an older tag", []string{`"2"`}, http.StatusPreconditionFailed},
		{"a newer tag", []string{`"4"`}, http.StatusPreconditionFailed},
		{"the current tag weak", []string{`W/"3"`}, http.StatusPreconditionFailed},
		{"a list holding the current tag", []string{`"1", "3", "9"`}, http.StatusOK},
		{"a list over two lines", []string{`"1"`, `"3"`}, http.StatusOK},
		{"a list with empty elements", []string{` , "3" ,, `}, http.StatusOK},
		{"a list without the current tag", []string{`"1", "2"`}, http.StatusPreconditionFailed},
		{"a list with the current tag only weak", []string{`"1", W/"3"`}, http.StatusPreconditionFailed},
		{"star", []string{`*`}, http.StatusOK},
		{"none", nil, http.StatusPreconditionRequired},
		{"unquoted", []string{`3`}, http.StatusBadRequest},
		{"unterminated", []string{`"3`}, http.StatusBadRequest},
		{"a quote inside", []string{`"3"3"`}, http.StatusBadRequest},
		{"trailing garbage", []string{`"3" x`}, http.StatusBadRequest},
		{"two tags without a comma", []string{`"3" "4"`}, http.StatusBadRequest},
		{"a space inside", []string{`"3 "`}, http.StatusBadRequest},
		{"a foreign tag", []string{`"abc"`}, http.StatusBadRequest},
		{"a non-canonical version", []string{`"03"`}, http.StatusBadRequest},
		{"a version beyond int64", []string{`"99999999999999999999"`}, http.StatusBadRequest},
		{"a timestamp for a version", []string{`"2026-01-01T00:00:00Z"`}, http.StatusBadRequest},
		{"two values for one lock field", []string{`"3/3"`}, http.StatusBadRequest},
		{"star and a tag", []string{`*, "3"`}, http.StatusBadRequest},
		{"empty", []string{``}, http.StatusBadRequest},
		{"huge", []string{`"3", ` + strings.Repeat(`"1", `, 2000) + `"2"`}, http.StatusBadRequest},
		{"many tags", []string{strings.Repeat(`"1", `, 40) + `"3"`}, http.StatusBadRequest},
		{"SQL in a tag", []string{`"3'; DROP TABLE http_items; --"`}, http.StatusBadRequest},
	}
	eachHTTPDB(t, func(t *testing.T, c configured) {
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				id := uint(100 + i)
				seedItem(t, c, id, 3)
				body := HttpItem{ID: id, Name: "edited", Version: 3} // the body's version is ignored
				r := request(tc.ifMatch...)
				err := c.db.Scopes(optlockhttp.IfMatch(r)).Save(&body).Error
				got, tag := statusOf(r, err)
				if err == nil {
					got = http.StatusOK
				}
				require.Equal(t, tc.want, got, "status (err %v)", err)
				stored, ok := storedItem(t, c, id)
				require.True(t, ok)
				switch tc.want {
				case http.StatusOK:
					assert.Equal(t, HttpItem{ID: id, Name: "edited", Version: 4}, stored, "written once")
					assert.Equal(t, int64(4), body.Version, "the struct holds what is stored")
					newTag, err := optlockhttp.ETag(c.db, &body)
					require.NoError(t, err)
					assert.Equal(t, `"4"`, newTag)
				default:
					assert.Equal(t, HttpItem{ID: id, Name: "seed", Version: 3}, stored, "nothing written")
					assert.Equal(t, int64(3), body.Version, "the struct is as it was")
				}
				if tc.want == http.StatusPreconditionFailed && !strings.Contains(tc.name, "weak") {
					assert.Equal(t, `"3"`, tag, "the current ETag")
				}
			})
		}
	})
}

// TestHTTPMissingRowIsPreconditionFailed: no write under If-Match ever inserts. A Save of a guarded
// model with If-Match "0" (the version a new struct holds, which a plain Save would insert) to an id
// that does not exist is 412, and so are "*", any other tag, an update and a delete; a Save of a
// struct without a key is 400. The table stays empty.
func TestHTTPMissingRowIsPreconditionFailed(t *testing.T) {
	writes := []struct {
		name string
		key  uint
		want int
		run  func(c configured, r *http.Request, row *HttpItem) error
	}{
		{"Save", 7, http.StatusPreconditionFailed, func(c configured, r *http.Request, row *HttpItem) error {
			return c.db.Scopes(optlockhttp.IfMatch(r)).Save(row).Error
		}},
		{"Updates", 7, http.StatusPreconditionFailed, func(c configured, r *http.Request, row *HttpItem) error {
			return c.db.Scopes(optlockhttp.IfMatch(r)).Model(row).Updates(map[string]any{"name": "x"}).Error
		}},
		{"Delete", 7, http.StatusPreconditionFailed, func(c configured, r *http.Request, row *HttpItem) error {
			return c.db.Scopes(optlockhttp.IfMatch(r)).Delete(row).Error
		}},
		{"Save without a key", 0, http.StatusBadRequest, func(c configured, r *http.Request, row *HttpItem) error {
			return c.db.Scopes(optlockhttp.IfMatch(r)).Save(row).Error
		}},
	}
	eachHTTPDB(t, func(t *testing.T, c configured) {
		for _, w := range writes {
			for _, ifMatch := range []string{`"0"`, `"5"`, `*`, `"0", "1"`} {
				t.Run(w.name+"/"+ifMatch, func(t *testing.T) {
					r := request(ifMatch)
					row := HttpItem{ID: w.key, Name: "new"}
					err := w.run(c, r, &row)
					got, tag := statusOf(r, err)
					require.Equal(t, w.want, got, "err %v", err)
					assert.Empty(t, tag, "no current ETag for a row that does not exist")
					if w.want == http.StatusPreconditionFailed {
						conflicts := optlockhttp.CurrentLocks(err)
						require.Len(t, conflicts, 1)
						assert.True(t, conflicts[0].Deleted, "the row is reported gone")
					}
					var n int64
					require.NoError(t, c.observer.Model(&HttpItem{}).Count(&n).Error)
					assert.Zero(t, n, "nothing inserted")
				})
			}
		}
	})
}

// TestHTTPHeaderWinsOverBody: the version in the request's body is never what the write is checked
// against. A body holding the current version with a stale If-Match is refused; a body holding a
// stale version with the current If-Match is written.
func TestHTTPHeaderWinsOverBody(t *testing.T) {
	eachHTTPDB(t, func(t *testing.T, c configured) {
		seedItem(t, c, 1, 5)
		r := request(`"4"`)
		body := HttpItem{ID: 1, Name: "current body, stale header", Version: 5}
		err := c.db.Scopes(optlockhttp.IfMatch(r)).Save(&body).Error
		requireConflict(t, err, uint(1))
		stored, _ := storedItem(t, c, 1)
		assert.Equal(t, int64(5), stored.Version)
		assert.Equal(t, "seed", stored.Name)

		r = request(`"5"`)
		body = HttpItem{ID: 1, Name: "stale body, current header", Version: 1}
		require.NoError(t, c.db.Scopes(optlockhttp.IfMatch(r)).Save(&body).Error)
		stored, _ = storedItem(t, c, 1)
		assert.Equal(t, HttpItem{ID: 1, Name: "stale body, current header", Version: 6}, stored)
		assert.Equal(t, int64(6), body.Version)
	})
}

// TestHTTPEveryWritePath: IfMatch on each write a guarded model allows (Save, Model(&row).Updates,
// Update, UpdateColumns, Delete) and on an unguarded model (IfMatch alone, WithLock, UpdateSafely):
// the current tag writes, a stale one is 412 with the current tag and writes nothing.
func TestHTTPEveryWritePath(t *testing.T) {
	type write struct {
		name    string
		deletes bool
		run     func(c configured, r *http.Request, id uint) error
	}
	items := []write{
		{"guarded Save", false, func(c configured, r *http.Request, id uint) error {
			return c.db.Scopes(optlockhttp.IfMatch(r)).Save(&HttpItem{ID: id, Name: "written"}).Error
		}},
		{"guarded Model(&row).Updates", false, func(c configured, r *http.Request, id uint) error {
			return c.db.Scopes(optlockhttp.IfMatch(r)).Model(&HttpItem{ID: id}).Updates(map[string]any{"name": "written"}).Error
		}},
		{"guarded Model(&row).Update", false, func(c configured, r *http.Request, id uint) error {
			return c.db.Scopes(optlockhttp.IfMatch(r)).Model(&HttpItem{ID: id}).Update("name", "written").Error
		}},
		{"guarded UpdateColumns", false, func(c configured, r *http.Request, id uint) error {
			return c.db.Scopes(optlockhttp.IfMatch(r)).Model(&HttpItem{ID: id}).UpdateColumns(HttpItem{Name: "written"}).Error
		}},
		{"guarded Delete", true, func(c configured, r *http.Request, id uint) error {
			return c.db.Scopes(optlockhttp.IfMatch(r)).Delete(&HttpItem{ID: id}).Error
		}},
	}
	docs := []write{
		{"unguarded Save", false, func(c configured, r *http.Request, id uint) error {
			return c.db.Scopes(optlockhttp.IfMatch(r)).Save(&HttpDoc{ID: id, Title: "written"}).Error
		}},
		{"unguarded WithLock Updates", false, func(c configured, r *http.Request, id uint) error {
			return c.db.Scopes(optlock.WithLock(), optlockhttp.IfMatch(r)).Model(&HttpDoc{ID: id}).Updates(map[string]any{"title": "written"}).Error
		}},
		{"unguarded UpdateSafely", false, func(c configured, r *http.Request, id uint) error {
			return optlock.UpdateSafely(c.db.Scopes(optlockhttp.IfMatch(r)), &HttpDoc{ID: id}, map[string]any{"title": "written"}).Error
		}},
		{"unguarded Delete", true, func(c configured, r *http.Request, id uint) error {
			return c.db.Scopes(optlockhttp.IfMatch(r)).Delete(&HttpDoc{ID: id}).Error
		}},
	}
	eachHTTPDB(t, func(t *testing.T, c configured) {
		for i, w := range items {
			t.Run(w.name, func(t *testing.T) {
				id := uint(10 + i)
				seedItem(t, c, id, 2)
				r := request(`"1"`)
				err := w.run(c, r, id)
				got, tag := statusOf(r, err)
				require.Equal(t, http.StatusPreconditionFailed, got, "stale: err %v", err)
				assert.Equal(t, `"2"`, tag)
				stored, ok := storedItem(t, c, id)
				require.True(t, ok)
				assert.Equal(t, HttpItem{ID: id, Name: "seed", Version: 2}, stored, "nothing written")

				require.NoError(t, w.run(c, request(`"2"`), id))
				stored, ok = storedItem(t, c, id)
				if w.deletes {
					assert.False(t, ok, "deleted")
					return
				}
				assert.Equal(t, HttpItem{ID: id, Name: "written", Version: 3}, stored)
			})
		}
		for i, w := range docs {
			t.Run(w.name, func(t *testing.T) {
				read := HttpDoc{ID: uint(20 + i), Title: "seed"}
				require.NoError(t, c.db.Create(&read).Error)
				require.NoError(t, c.db.First(&read, read.ID).Error)
				current, err := optlockhttp.ETag(c.db, &read)
				require.NoError(t, err)
				require.NoError(t, c.observer.Model(&HttpDoc{}).Where("id = ?", read.ID).
					Update("updated_at", read.UpdatedAt.Add(-time2s)).Error) // another writer moved it
				var moved HttpDoc
				require.NoError(t, c.db.First(&moved, read.ID).Error)
				movedTag, err := optlockhttp.ETag(c.db, &moved)
				require.NoError(t, err)
				require.NotEqual(t, current, movedTag)

				r := request(current)
				err = w.run(c, r, read.ID)
				got, tag := statusOf(r, err)
				require.Equal(t, http.StatusPreconditionFailed, got, "stale: err %v", err)
				assert.Equal(t, movedTag, tag, "the current ETag, as a re-read gives it")
				var stored HttpDoc
				require.NoError(t, c.observer.First(&stored, read.ID).Error)
				assert.Equal(t, "seed", stored.Title, "nothing written")

				require.NoError(t, w.run(c, request(movedTag), read.ID))
				var rows []HttpDoc
				require.NoError(t, c.observer.Where("id = ?", read.ID).Find(&rows).Error)
				if w.deletes {
					assert.Empty(t, rows, "deleted")
					return
				}
				require.Len(t, rows, 1)
				assert.Equal(t, "written", rows[0].Title)
			})
		}
	})
}
