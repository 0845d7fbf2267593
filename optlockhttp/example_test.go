package optlockhttp_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
	"github.com/go-optlock/optlock/optlockhttp"
)

// Item is the examples' resource.
type Item struct {
	ID      uint
	Name    string
	Version int64
}

// openExample opens a SQLite file with optlock guarding Item, and one item stored at version 1.
func openExample() (*gorm.DB, func()) {
	dir, err := os.MkdirTemp("", "optlockhttp-example")
	if err != nil {
		panic(err)
	}
	db, err := gorm.Open(sqlite.Open(filepath.Join(dir, "example.db")), &gorm.Config{Logger: logger.Discard})
	if err == nil {
		err = db.Use(optlock.New(optlock.Guard(&Item{})))
	}
	if err == nil {
		err = db.AutoMigrate(&Item{})
	}
	if err == nil {
		err = db.Create(&Item{ID: 1, Name: "pen"}).Error
	}
	if err != nil {
		panic(err)
	}
	return db, func() {
		if conn, err := db.DB(); err == nil {
			_ = conn.Close()
		}
		_ = os.RemoveAll(dir)
	}
}

// A stale PUT is refused with 412 and the current ETag; the current one is written and gets the next.
func ExampleIfMatch() {
	db, done := openExample()
	defer done()

	var item Item
	db.First(&item, 1)
	tag, _ := optlockhttp.ETag(db, &item)
	fmt.Println("GET:", tag)

	for _, ifMatch := range []string{`"0"`, tag} {
		r := httptest.NewRequest(http.MethodPut, "/items/1", nil)
		r.Header.Set("If-Match", ifMatch)
		body := Item{ID: 1, Name: "ink"} // decoded from the request; its version is not looked at
		if err := db.Scopes(optlockhttp.IfMatch(r)).Save(&body).Error; err != nil {
			w := httptest.NewRecorder()
			optlockhttp.WriteError(w, r, err)
			fmt.Println("PUT If-Match", ifMatch+":", w.Code, "ETag", w.Header().Get("ETag"))
			continue
		}
		next, _ := optlockhttp.ETag(db, &body)
		fmt.Println("PUT If-Match", ifMatch+":", http.StatusOK, "ETag", next)
	}
	// Output:
	// GET: "1"
	// PUT If-Match "0": 412 ETag "1"
	// PUT If-Match "1": 200 ETag "2"
}

// A PUT without If-Match is 428; no row is ever inserted by a write under IfMatch.
func ExampleErrPreconditionRequired() {
	db, done := openExample()
	defer done()

	r := httptest.NewRequest(http.MethodPut, "/items/2", nil)
	err := db.Scopes(optlockhttp.IfMatch(r)).Save(&Item{ID: 2, Name: "new"}).Error
	fmt.Println(optlockhttp.Status(err))

	r.Header.Set("If-Match", `"0"`)
	err = db.Scopes(optlockhttp.IfMatch(r)).Save(&Item{ID: 2, Name: "new"}).Error
	var n int64
	db.Model(&Item{}).Where("id = 2").Count(&n)
	fmt.Println(optlockhttp.Status(err), n)
	// Output:
	// 428
	// 412 0
}

// A GET whose If-None-Match holds the current tag is answered 304, without a body.
func ExampleNotModified() {
	r := httptest.NewRequest(http.MethodGet, "/items/1", nil)
	r.Header.Set("If-None-Match", `"5", W/"7"`)
	for _, current := range []string{`"7"`, `"8"`} {
		w := httptest.NewRecorder()
		fmt.Println(optlockhttp.NotModified(w, r, current), w.Code)
	}
	// Output:
	// true 304
	// false 200
}

// A tag's form: the lock values in order, a version in decimal, a timestamp in UTC.
func ExampleParseETag() {
	values, _ := optlockhttp.ParseETag(`"7/2026-03-01T12:34:56.789Z"`)
	fmt.Println(values[0].Int, values[1].Time.Format("15:04:05.000"), optlockhttp.FormatETag(values))
	_, err := optlockhttp.ParseETag(`"07"`)
	fmt.Println(optlockhttp.Status(err))
	// Output:
	// 7 12:34:56.789 "7/2026-03-01T12:34:56.789Z"
	// 400
}
