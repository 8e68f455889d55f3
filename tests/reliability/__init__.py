"""Reliability and security: hostile input, sick collectors, shutdowns, soaks, audits."""
