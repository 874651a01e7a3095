"""Transforms: plain functions that turn collected records into warehouse rows
and warehouse rows into facts. Each takes a connection and a day."""
