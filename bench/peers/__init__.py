"""Reference WSGI apps the callback benchmark compares the project against."""
