package main

import (
	"fmt"

	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"

	"github.com/go-optlock/optlock"
)

// guardedDB opens a second *gorm.DB on db's connection pool with optlock registered and Product
// guarded (optlock.Guard, the safe default): every write of a Product through it is lock-aware, so
// the checked buyers write with the same plain GORM call as the naive ones. db itself stays without
// the plugin, for the run without a lock.
func guardedDB(db *gorm.DB) (*gorm.DB, error) {
	conn, err := db.DB()
	if err != nil {
		return nil, err
	}
	var dialector gorm.Dialector
	switch name := db.Dialector.Name(); name {
	case "sqlite":
		dialector = &sqlite.Dialector{Conn: conn}
	case "postgres":
		dialector = postgres.New(postgres.Config{Conn: conn})
	case "mysql":
		dialector = mysql.New(mysql.Config{Conn: conn})
	default:
		return nil, fmt.Errorf("no guarded handle for dialect %q", name)
	}
	guarded, err := gorm.Open(dialector, &gorm.Config{Logger: db.Logger})
	if err != nil {
		return nil, err
	}
	if err := guarded.Use(optlock.New(optlock.Guard(&Product{}))); err != nil {
		return nil, err
	}
	return guarded, nil
}
