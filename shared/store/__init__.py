"""Firestore repositories (DESIGN §4). Each module owns one part of the layout; claims use
create-if-absent documents, which are atomic in Firestore and in the local emulator."""
