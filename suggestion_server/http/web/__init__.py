"""The experiment web page: sign-in, the experiment list and one page per experiment."""
