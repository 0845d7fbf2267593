package tests

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/optlockhttp"
)

// HttpItem is a guarded model with a version: the resource of most HTTP tests.
type HttpItem struct {
	ID      uint `gorm:"primaryKey"`
	Name    string
	Version int64
}

func (HttpItem) TableName() string { return "http_items" }

// HttpDoc is not guarded, and locks on updated_at: written with WithLock, UpdateSafely or IfMatch alone.
type HttpDoc struct {
	ID        uint `gorm:"primaryKey"`
	Title     string
	UpdatedAt time.Time
}

func (HttpDoc) TableName() string { return "http_docs" }

// HttpPair has a composite key and two lock fields (guarded on both).
type HttpPair struct {
	Tenant    string `gorm:"primaryKey;size:32"`
	Code      int64  `gorm:"primaryKey;autoIncrement:false"`
	Note      string
	Version   int64
	UpdatedAt time.Time
}

func (HttpPair) TableName() string { return "http_pairs" }

// httpModels are the HTTP tests' tables.
var httpModels = []any{&HttpItem{}, &HttpDoc{}, &HttpPair{}}

// httpGuards guard HttpItem on its version and HttpPair on both lock fields.
var httpGuards = []optlock.Option{optlock.Guard(&HttpItem{}), optlock.Guard(&HttpPair{}, "version", "updated_at")}

// eachHTTPDB runs fn on every database with the HTTP tables, the caller's pool (TranslateError on, as
// CreateOnly needs) and an observer pool that reads results back as another process would.
func eachHTTPDB(t *testing.T, fn func(t *testing.T, c configured)) {
	t.Helper()
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			fn(t, openConfigured(t, d, &gorm.Config{TranslateError: true}, httpModels, httpGuards...))
		})
	}
}

// request makes a PUT with the given If-Match lines (none: no If-Match).
func request(ifMatch ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPut, "/items/1", strings.NewReader("{}"))
	for _, v := range ifMatch {
		r.Header.Add("If-Match", v)
	}
	return r
}

// seedItem creates HttpItem id at the given version through the observer and returns it as read.
func seedItem(t *testing.T, c configured, id uint, version int64) HttpItem {
	t.Helper()
	require.NoError(t, c.observer.Exec("INSERT INTO http_items (id, name, version) VALUES (?, ?, ?)", id, "seed", version).Error)
	var got HttpItem
	require.NoError(t, c.db.First(&got, id).Error)
	return got
}

// storedItem reads HttpItem id through the observer; ok is false when it does not exist.
func storedItem(t *testing.T, c configured, id uint) (HttpItem, bool) {
	t.Helper()
	var rows []HttpItem
	require.NoError(t, c.observer.Where("id = ?", id).Find(&rows).Error)
	if len(rows) == 0 {
		return HttpItem{}, false
	}
	return rows[0], true
}

// statusOf is the status WriteError gives err for request r, and the response's ETag.
func statusOf(r *http.Request, err error) (int, string) {
	w := httptest.NewRecorder()
	optlockhttp.WriteError(w, r, err)
	return w.Code, w.Header().Get("ETag")
}

// time2s is how far the tests move a row's updated_at to make another writer's change.
const time2s = 2 * time.Second
