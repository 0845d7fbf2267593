package tests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
	"gorm.io/plugin/optimisticlock"

	"github.com/go-optlock/optlock"
)

// User is the model of docs/migrating.md: written for gorm.io/plugin/optimisticlock, unchanged.
type User struct {
	ID      uint
	Name    string
	Age     uint
	Version optimisticlock.Version
}

func (User) TableName() string { return "core_example_users" }

// UserRepo is the "after" repository of docs/migrating.md.
type UserRepo struct{ db *gorm.DB }

// Rename writes a user the caller read; a stale one is refused with optlock.ErrConflict.
func (r UserRepo) Rename(ctx context.Context, u *User, name string) error {
	return r.db.WithContext(ctx).Model(u).Update("name", name).Error
}

// Birthday re-reads and retries on conflict.
func (r UserRepo) Birthday(ctx context.Context, id uint) error {
	return optlock.Retry(ctx, func(ctx context.Context) error {
		var u User
		if err := r.db.WithContext(ctx).First(&u, id).Error; err != nil {
			return err
		}
		return r.db.WithContext(ctx).Model(&u).Update("age", u.Age+1).Error
	})
}

// ResetAge is a deliberate blind write by key (the official plugin's Unscoped()).
func (r UserRepo) ResetAge(ctx context.Context, id uint) error {
	return r.db.WithContext(ctx).Scopes(optlock.Unchecked()).Model(&User{ID: id}).Update("age", 0).Error
}

func Example_migratingFromOptimisticlock() {
	dir, _ := os.MkdirTemp("", "optlock-example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqliteOpen(filepath.Join(dir, "app.db")), &gorm.Config{Logger: logger.Discard})
	defer func() { conn, _ := db.DB(); conn.Close() }()
	// The one line that changes: register optlock and guard the model.
	if err := db.Use(optlock.New(optlock.Guard(&User{}))); err != nil {
		panic(err)
	}
	db.AutoMigrate(&User{})
	repo := UserRepo{db: db}
	ctx := context.Background()

	u := User{Name: "ann", Age: 30}
	db.Create(&u)
	stale := u
	fmt.Println(repo.Rename(ctx, &u, "anna"), u.Version.Int64)
	fmt.Println(errors.Is(repo.Rename(ctx, &stale, "annie"), optlock.ErrConflict))
	fmt.Println(repo.Birthday(ctx, u.ID), repo.ResetAge(ctx, u.ID))
	db.First(&u, u.ID)
	fmt.Println(u.Name, u.Age, u.Version.Int64)
	// Output:
	// <nil> 2
	// true
	// <nil> <nil>
	// anna 0 4
}
