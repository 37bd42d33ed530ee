"""Delivery of results to other systems: the HL7 v2 outbox sent to a LIS over MLLP."""
