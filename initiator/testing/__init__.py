"""Test harness shared by the initiator suites (clients, users, emulator topics, the sandbox gateway).

Outside the image: .dockerignore leaves testing/ and every tests/ folder out.
"""
