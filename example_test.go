package optlock_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

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
	dsn := "file:" + filepath.Join(dir, "bank.db") + "?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate"
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
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

func ExampleRetry() {
	db, done := exampleDB()
	defer done()

	// A read-modify-write that re-reads on every attempt; conflicts are retried with backoff.
	deposit := func(ctx context.Context, owner string, amount int) error {
		return optlock.Retry(ctx, func(ctx context.Context) error {
			var acc Account
			if err := db.WithContext(ctx).First(&acc, "owner = ?", owner).Error; err != nil {
				return err
			}
			return optlock.UpdateSafely(db.WithContext(ctx), &acc, map[string]any{"balance": acc.Balance + amount}).Error
		})
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := deposit(context.Background(), "bo", 5); err != nil {
				fmt.Println(err)
			}
		}()
	}
	wg.Wait()

	var acc Account
	db.First(&acc, "owner = ?", "bo")
	fmt.Println(acc.Balance, acc.Version)
	// Output: 100 11
}

func ExampleWithLock_delete() {
	db, done := exampleDB()
	defer done()

	var accounts []Account
	db.Order("id").Find(&accounts)
	db.Model(&Account{}).Where("owner = ?", "cy").Update("version", 9) // changed after we read it

	err := db.Scopes(optlock.WithLock()).Delete(&accounts).Error
	var conflict *optlock.OptimisticLockError
	if errors.As(err, &conflict) {
		fmt.Printf("%v changed: version now %v\n", conflict.Rows[0].ID, conflict.Rows[0].Current["version"])
	}
	var left int64
	db.Model(&Account{}).Count(&left)
	fmt.Println("accounts left:", left)
	// Output:
	// 3 changed: version now 9
	// accounts left: 3
}

func ExampleOnConflict() {
	dir, _ := os.MkdirTemp("", "optlock-example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "bank.db")), &gorm.Config{Logger: logger.Discard})
	defer func() { conn, _ := db.DB(); conn.Close() }()

	var conflicts atomic.Int64 // export it as a metric
	db.Use(optlock.New(optlock.OnConflict(func(ctx context.Context, err *optlock.OptimisticLockError) {
		conflicts.Add(1)
	})))
	db.AutoMigrate(&Account{})
	acc := Account{Owner: "di", Balance: 1, Version: 1}
	db.Create(&acc)
	stale := acc

	optlock.UpdateSafely(db, &acc, map[string]any{"balance": 2})
	optlock.UpdateSafely(db, &stale, map[string]any{"balance": 3})
	fmt.Println("conflicts:", conflicts.Load())
	// Output: conflicts: 1
}

func ExampleTransaction() {
	db, done := exampleDB()
	defer done()

	// A transfer reads and writes two accounts in one transaction; a conflict, or a transaction the
	// database aborted, runs the whole transaction again.
	transfer := func(ctx context.Context, from, to string, amount int) error {
		return optlock.Transaction(ctx, db, func(tx *gorm.DB) error {
			var src, dst Account
			if err := tx.First(&src, "owner = ?", from).Error; err != nil {
				return err
			}
			if err := tx.First(&dst, "owner = ?", to).Error; err != nil {
				return err
			}
			if err := optlock.UpdateSafely(tx, &src, map[string]any{"balance": src.Balance - amount}).Error; err != nil {
				return err
			}
			return optlock.UpdateSafely(tx, &dst, map[string]any{"balance": dst.Balance + amount}).Error
		})
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := transfer(context.Background(), "ann", "bo", 5); err != nil {
				fmt.Println(err)
			}
		}()
	}
	wg.Wait()

	var ann, bo Account
	db.First(&ann, "owner = ?", "ann")
	db.First(&bo, "owner = ?", "bo")
	fmt.Println(ann.Balance, bo.Balance)
	// Output: 50 100
}

func ExampleErrTxAborted() {
	// What to do with an error from a lock-checked write inside your own transaction.
	advice := func(err error) string {
		switch {
		case err == nil:
			return "go on"
		case errors.Is(err, optlock.ErrConflict):
			return "the transaction is alive: carry on without this write, or roll back and retry"
		case errors.Is(err, optlock.ErrTxAborted):
			return "the transaction is dead: roll back and run it again (optlock.Transaction does)"
		default:
			return "roll back"
		}
	}
	fmt.Println(advice(&optlock.OptimisticLockError{Table: "accounts", ConflictIDs: []any{7}}))
	fmt.Println(advice(fmt.Errorf("transfer: %w", optlock.ErrTxAborted)))
	fmt.Println(errors.Is(optlock.ErrTxAborted, optlock.ErrConflict), optlock.IsRetryable(optlock.ErrTxAborted))
	// Output:
	// the transaction is alive: carry on without this write, or roll back and retry
	// the transaction is dead: roll back and run it again (optlock.Transaction does)
	// false true
}

// Wallet-style accounts guarded: every write is lock-aware, with or without WithLock.
func ExampleGuard() {
	dir, _ := os.MkdirTemp("", "optlock-example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "bank.db")), &gorm.Config{Logger: logger.Discard})
	defer func() { conn, _ := db.DB(); conn.Close() }()
	if err := db.Use(optlock.New(optlock.Guard(&Account{}))); err != nil {
		panic(err)
	}
	db.AutoMigrate(&Account{})
	acc := Account{Owner: "ann", Balance: 100, Version: 1}
	db.Create(&acc)
	stale := acc

	// A plain GORM call, no scope: checked, and the version advances in memory.
	db.Model(&acc).Update("balance", 90)
	fmt.Println("version:", acc.Version)

	// The stale copy is refused, by Save as by Update.
	stale.Balance = 0
	fmt.Println(errors.Is(db.Save(&stale).Error, optlock.ErrConflict))

	// A write by query cannot be checked, but it advances the version of every row it touches.
	db.Model(&Account{}).Where("owner = ?", "ann").Update("balance", 80)
	db.First(&acc, acc.ID)
	fmt.Println("version:", acc.Version, "balance:", acc.Balance)
	// Output:
	// version: 2
	// true
	// version: 3 balance: 80
}

func ExampleUnchecked() {
	dir, _ := os.MkdirTemp("", "optlock-example")
	defer os.RemoveAll(dir)
	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "bank.db")), &gorm.Config{Logger: logger.Discard})
	defer func() { conn, _ := db.DB(); conn.Close() }()
	db.Use(optlock.New(optlock.Guard(&Account{})))
	db.AutoMigrate(&Account{})
	db.Create(&Account{ID: 7, Owner: "bo", Balance: 50, Version: 4})

	// A deliberate blind write by key: not checked against a read, but the version still advances,
	// so anyone holding an older read is refused afterwards.
	err := db.Scopes(optlock.Unchecked()).Model(&Account{ID: 7}).Update("balance", 0).Error
	var acc Account
	db.First(&acc, 7)
	fmt.Println(err, acc.Balance, acc.Version)
	// Output: <nil> 0 5
}

func ExampleUpdateEach() {
	db, done := exampleDB()
	defer done()

	// Read, change each row differently in memory, write them all back in one checked statement.
	var accounts []Account
	db.Order("id").Find(&accounts)
	for i := range accounts {
		accounts[i].Balance += 10 * (i + 1) // interest, per account
	}
	res := optlock.UpdateEach(db, &accounts, "balance")
	fmt.Println(res.Error, res.RowsAffected)
	for _, a := range accounts {
		fmt.Println(a.Owner, a.Balance, a.Version)
	}

	// A stale copy of the rows is refused as a whole: nothing is written.
	stale := append([]Account(nil), accounts...)
	stale[1].Version = 1
	var conflict *optlock.OptimisticLockError
	fmt.Println(errors.As(optlock.UpdateEach(db, &stale).Error, &conflict), conflict.ConflictIDs)
	// Output:
	// <nil> 3
	// ann 110 2
	// bo 70 2
	// cy 100 2
	// true [2]
}
