package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"gorm.io/gorm"

	"github.com/go-optlock/optlock/optlockhttp"
)

// Item is the service's resource: /items/{id}. Version is its lock; clients never need to send it
// (If-Match carries it), and a version in a body is ignored.
type Item struct {
	ID      uint   `gorm:"primaryKey" json:"id"`
	Name    string `json:"name"`
	Qty     int    `json:"qty"`
	Version int64  `json:"version"`
}

// TableName keeps the example's table apart from others in the same database.
func (Item) TableName() string { return "http_rest_items" }

// server serves /items/{id}. With locked false it is the API as often written by hand: it reads
// If-Match nowhere and writes whatever the client sent, so concurrent read-modify-writes lose updates.
type server struct {
	db     *gorm.DB
	locked bool
}

// newServer returns the service's handler on Go's pattern ServeMux.
func newServer(db *gorm.DB, locked bool) http.Handler {
	s := &server{db: db, locked: locked}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", s.get)
	mux.HandleFunc("PUT /items/{id}", s.put)
	mux.HandleFunc("PATCH /items/{id}", s.patch)
	mux.HandleFunc("DELETE /items/{id}", s.delete)
	return mux
}

// get answers the item with its ETag, or 304 when If-None-Match already holds that tag.
func (s *server) get(w http.ResponseWriter, r *http.Request) {
	var item Item
	if !s.find(w, r, &item) {
		return
	}
	tag, err := optlockhttp.ETag(s.db, &item)
	if err != nil {
		optlockhttp.WriteError(w, r, err)
		return
	}
	if optlockhttp.NotModified(w, r, tag) {
		return
	}
	writeJSON(w, http.StatusOK, item)
}

// put replaces the item: with If-Match, only if it still holds that tag; with If-None-Match: *, only
// if it does not exist yet (create-only).
func (s *server) put(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var item Item
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&item); err != nil {
		http.Error(w, "the body is not an item: "+err.Error(), http.StatusBadRequest)
		return
	}
	item.ID = id // the URL names the row, never the body
	status := http.StatusOK
	var err error
	switch {
	case optlockhttp.CreateOnly(r):
		item.Version, status = 0, http.StatusCreated
		err = s.db.Create(&item).Error
	case s.locked:
		err = s.db.Scopes(optlockhttp.IfMatch(r)).Save(&item).Error
	default:
		err = s.db.Save(&item).Error
	}
	s.written(w, r, status, &item, err)
}

// patch changes the fields the body names (name, qty).
func (s *server) patch(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	var change struct {
		Name *string `json:"name"`
		Qty  *int    `json:"qty"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&change); err != nil {
		http.Error(w, "the body is not a change: "+err.Error(), http.StatusBadRequest)
		return
	}
	values := map[string]any{}
	if change.Name != nil {
		values["name"] = *change.Name
	}
	if change.Qty != nil {
		values["qty"] = *change.Qty
	}
	item := Item{ID: id}
	db := s.db
	if s.locked {
		db = db.Scopes(optlockhttp.IfMatch(r))
	}
	err := db.Model(&item).Updates(values).Error
	if err == nil {
		err = s.db.First(&item, id).Error // the other fields, for the response
	}
	s.written(w, r, http.StatusOK, &item, err)
}

// delete removes the item if it still holds the tag in If-Match.
func (s *server) delete(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r)
	if !ok {
		return
	}
	db := s.db
	if s.locked {
		db = db.Scopes(optlockhttp.IfMatch(r))
	}
	if err := db.Delete(&Item{ID: id}).Error; err != nil {
		optlockhttp.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// written answers a write: the error as problem+json, or the item with its new ETag.
func (s *server) written(w http.ResponseWriter, r *http.Request, status int, item *Item, err error) {
	if err != nil {
		optlockhttp.WriteError(w, r, err)
		return
	}
	tag, err := optlockhttp.ETag(s.db, item)
	if err != nil {
		optlockhttp.WriteError(w, r, err)
		return
	}
	w.Header().Set("ETag", tag)
	writeJSON(w, status, item)
}

// find reads the item the URL names, answering 404 when there is none.
func (s *server) find(w http.ResponseWriter, r *http.Request, item *Item) bool {
	id, ok := pathID(w, r)
	if !ok {
		return false
	}
	err := s.db.First(item, id).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		http.Error(w, "no such item", http.StatusNotFound)
		return false
	case err != nil:
		optlockhttp.WriteError(w, r, err)
		return false
	}
	return true
}

// pathID reads {id}, answering 400 when it is not a positive integer.
func pathID(w http.ResponseWriter, r *http.Request) (uint, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 32)
	if err != nil || id == 0 {
		http.Error(w, "the id is not a positive integer", http.StatusBadRequest)
		return 0, false
	}
	return uint(id), true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
