// Command quickstart shows optlock refusing a lost update, on an embedded SQLite database. Product is
// guarded (optlock.Guard): its writes are plain GORM calls, and every one of them is checked.
//
//	go run ./examples/quickstart
package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/go-optlock/optlock"
)

// Product is locked by its Version field.
type Product struct {
	ID      uint
	Name    string
	Stock   int
	Version int
}

func main() {
	dir, err := os.MkdirTemp("", "optlock-quickstart")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := gorm.Open(sqlite.Open(filepath.Join(dir, "shop.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	// Once, after gorm.Open: every write of a Product is lock-aware from now on.
	if err := db.Use(optlock.New(optlock.Guard(&Product{}))); err != nil {
		log.Fatal(err)
	}
	if err := db.AutoMigrate(&Product{}); err != nil {
		log.Fatal(err)
	}
	if err := db.Create(&Product{Name: "lamp", Stock: 10, Version: 1}).Error; err != nil {
		log.Fatal(err)
	}

	// Alice and Bob both read the lamp: stock 10, version 1.
	var alice, bob Product
	db.First(&alice, "name = ?", "lamp")
	db.First(&bob, "name = ?", "lamp")
	fmt.Printf("alice and bob read: stock %d, version %d\n", alice.Stock, alice.Version)

	// Alice sells 3: plain GORM. The UPDATE checks the version she read and advances it.
	if err := db.Model(&alice).Update("stock", alice.Stock-3).Error; err != nil {
		log.Fatal(err)
	}
	fmt.Printf("alice sold 3: stock %d, version %d\n", alice.Stock, alice.Version)

	// Bob sells 2 from his stale copy. Without a lock he would write stock 8 and lose Alice's sale.
	err = db.Model(&bob).Update("stock", bob.Stock-2).Error
	var conflict *optlock.OptimisticLockError
	if errors.As(err, &conflict) {
		fmt.Printf("bob's write refused: %v\n", err)
		fmt.Printf("conflicting ids: %v\n", conflict.ConflictIDs)
	}

	// Bob re-reads and retries.
	db.First(&bob, bob.ID)
	if err := db.Model(&bob).Update("stock", bob.Stock-2).Error; err != nil {
		log.Fatal(err)
	}
	var stored Product
	db.First(&stored, bob.ID)
	fmt.Printf("bob re-read and sold 2: stock %d, version %d (no sale lost)\n", stored.Stock, stored.Version)
}
