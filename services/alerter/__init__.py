"""Alerter worker: turns bursts of wrong-prediction reports into one alert and one email."""
