package optlock_test

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
)

func ExampleQuietConflicts() {
	dir, _ := os.MkdirTemp("", "optlock-example")
	defer os.RemoveAll(dir)
	// GORM's default logger (level Warn), writing to a buffer here instead of the standard output.
	var out bytes.Buffer
	gormLog := logger.New(log.New(&out, "\r\n", log.LstdFlags), logger.Config{LogLevel: logger.Warn})

	db, _ := gorm.Open(sqlite.Open(filepath.Join(dir, "bank.db")), &gorm.Config{Logger: optlock.QuietConflicts(gormLog)})
	defer func() { conn, _ := db.DB(); conn.Close() }()
	db.Use(optlock.New(optlock.Guard(&Account{})))
	db.AutoMigrate(&Account{})
	acc := Account{Owner: "ann", Balance: 100}
	db.Create(&acc)
	stale := acc
	db.Model(&acc).Update("balance", 90)

	// A conflict reaches the caller, not the error log.
	err := db.Model(&stale).Update("balance", 0).Error
	fmt.Println("conflict:", errors.Is(err, optlock.ErrConflict), "logged:", out.Len() > 0)

	// A real error is still logged as one.
	db.Exec("UPDATE no_such_table SET balance = 0")
	fmt.Println("error logged:", strings.Contains(out.String(), "no such table"))
	// Output:
	// conflict: true logged: false
	// error logged: true
}
