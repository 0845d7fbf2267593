package optlock_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
)

// Account is the model the examples lock by its Version field.
type Account struct {
	ID      uint
	Owner   string
	Balance int
	Version int
}

func (Account) TableName() string { return "core_example_accounts" }

// exampleDB opens a SQLite file in a temporary directory with the plugin and a few accounts.
func exampleDB() (*gorm.DB, func()) {
	dir, err := os.MkdirTemp("", "optlock-example")
	if err != nil {
		panic(err)
	}
	db, err := gorm.Open(sqlite.Open(filepath.Join(dir, "bank.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		panic(err)
	}
	if err := db.Use(optlock.New()); err != nil {
		panic(err)
	}
	if err := db.AutoMigrate(&Account{}); err != nil {
		panic(err)
	}
	db.Create(&[]Account{{Owner: "ann", Balance: 100, Version: 1}, {Owner: "bo", Balance: 50, Version: 1}, {Owner: "cy", Balance: 70, Version: 1}})
	return db, func() {
		if conn, err := db.DB(); err == nil {
			conn.Close()
		}
		os.RemoveAll(dir)
	}
}

func ExampleUpdateSafely() {
	db, done := exampleDB()
	defer done()

	var acc Account
	db.First(&acc, "owner = ?", "ann")
	res := optlock.UpdateSafely(db, &acc, map[string]any{"balance": acc.Balance - 30})
	fmt.Println(res.Error, res.RowsAffected, acc.Balance, acc.Version)
	// Output: <nil> 1 70 2
}

func ExampleUpdateSafely_bulk() {
	db, done := exampleDB()
	defer done()

	var accounts []Account
	db.Order("id").Find(&accounts)
	// Someone else changes bo's account after we read it.
	db.Model(&Account{}).Where("owner = ?", "bo").Updates(map[string]any{"balance": 0, "version": 2})

	err := optlock.UpdateSafely(db, &accounts, map[string]any{"balance": 1000}).Error
	var conflict *optlock.OptimisticLockError
	if errors.As(err, &conflict) {
		fmt.Println("conflict on ids", conflict.ConflictIDs)
	}
	var written int64
	db.Model(&Account{}).Where("balance = 1000").Count(&written)
	fmt.Println("rows written:", written)
	// Output:
	// conflict on ids [2]
	// rows written: 0
}

func ExampleWithLock() {
	db, done := exampleDB()
	defer done()

	var acc Account
	db.First(&acc, "owner = ?", "cy")
	stale := acc

	// The scope works on ordinary GORM calls.
	err := db.Scopes(optlock.WithLock("version")).Model(&acc).Update("balance", 80).Error
	fmt.Println(err, acc.Version)

	err = db.Scopes(optlock.WithLock("version")).Model(&stale).Update("balance", 90).Error
	fmt.Println(errors.Is(err, optlock.ErrConflict))
	// Output:
	// <nil> 2
	// true
}

func ExampleOptimisticLockError() {
	err := error(&optlock.OptimisticLockError{Table: "accounts", ConflictIDs: []any{7}})
	fmt.Println(err)
	fmt.Println(errors.Is(err, optlock.ErrConflict))
	// Output:
	// optlock: row 7 of table "accounts" was changed or deleted since it was read; nothing was written: re-read it and retry
	// true
}
