"""The stores (DESIGN §4): ``interfaces`` says what the rest of Apex may ask of them,
``documents`` what they keep; the Firestore implementations (``runs``, ``threads``,
``usage``, ``dedup``, ``ratelimit``, over ``storage``) each own one part of the layout.
Claims use create-if-absent documents, which are atomic in Firestore and in the local
emulator."""
