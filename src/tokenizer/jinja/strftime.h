// Python's datetime.strftime for a naive local time, as strftime_now(fmt) in transformers' templates produces it
// (Llama 3.x writes "Today Date: 26 Jul 2024" with "%d %b %Y"). C-locale names; %z and %Z are empty for a naive
// datetime; glibc's flags '-' (no padding), '_' (space padding), '0' and '^' (upper case) are honoured.
#pragma once

#include <ctime>
#include <string>

namespace mmfp4::jinja {

// t needs tm_year, tm_mon, tm_mday, tm_hour, tm_min, tm_sec; weekday and day of year are derived from the date.
std::string py_strftime(const std::string& fmt, const std::tm& t);
std::tm local_now();

}  // namespace mmfp4::jinja
