"""Who is calling (mTLS or JWT), what that caller may do (configured grants), and how much."""
