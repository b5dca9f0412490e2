#include "tokenizer/jinja/strftime.h"

#include <cctype>
#include <chrono>

namespace mmfp4::jinja {

namespace {

const char* const kDays[] = {"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"};
const char* const kMonths[] = {"January", "February", "March",     "April",   "May",      "June",
                               "July",    "August",   "September", "October", "November", "December"};

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// Days since 1970-01-01 of a civil date (proleptic Gregorian).
int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

struct Fields {
  int year, mon, mday, hour, min, sec, wday, yday;  // wday: 0 = Sunday; yday: 0-based
};

Fields fields(const std::tm& t) {
  Fields f;
  f.year = t.tm_year + 1900;
  f.mon = t.tm_mon;
  f.mday = t.tm_mday;
  f.hour = t.tm_hour;
  f.min = t.tm_min;
  f.sec = t.tm_sec;
  int64_t days = days_from_civil(f.year, f.mon + 1, f.mday);
  f.wday = int(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday
  f.yday = int(days - days_from_civil(f.year, 1, 1));
  return f;
}

// ISO 8601 week number and week-based year.
void iso_week(const Fields& f, int& iso_year, int& week) {
  int wday_mon = (f.wday + 6) % 7;  // 0 = Monday
  int w = (f.yday - wday_mon + 10) / 7;
  iso_year = f.year;
  if (w < 1) {
    iso_year = f.year - 1;
    int prev_days = leap(iso_year) ? 366 : 365;
    Fields g = f;
    g.year = iso_year;
    g.yday = f.yday + prev_days;
    w = (g.yday - wday_mon + 10) / 7;
  } else {
    int days_in_year = leap(f.year) ? 366 : 365;
    if (w == 53 && (f.yday - wday_mon + 3) >= days_in_year) {
      // The Thursday of this week falls in the next year.
      w = 1;
      iso_year = f.year + 1;
    }
  }
  week = w;
}

std::string num(long v, int width, char pad_flag, char default_pad) {
  std::string s = std::to_string(v < 0 ? -v : v);
  char pad = pad_flag == '-' ? 0 : pad_flag == '_' ? ' ' : pad_flag == '0' ? '0' : default_pad;
  if (pad)
    while (int(s.size()) < width) s.insert(s.begin(), pad);
  if (v < 0) s.insert(s.begin(), '-');
  return s;
}

}  // namespace

std::string py_strftime(const std::string& fmt, const std::tm& t) {
  Fields f = fields(t);
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%' || i + 1 >= fmt.size()) {
      out += fmt[i];
      continue;
    }
    size_t start = i;
    char flag = 0;
    ++i;
    if (fmt[i] == '-' || fmt[i] == '_' || fmt[i] == '0' || fmt[i] == '^' || fmt[i] == '#') {
      flag = fmt[i];
      if (++i >= fmt.size()) {
        out += fmt.substr(start);
        break;
      }
    }
    char c = fmt[i];
    std::string s;
    int h12 = f.hour % 12 == 0 ? 12 : f.hour % 12;
    switch (c) {
      case 'a': s = std::string(kDays[f.wday]).substr(0, 3); break;
      case 'A': s = kDays[f.wday]; break;
      case 'b':
      case 'h': s = std::string(kMonths[f.mon]).substr(0, 3); break;
      case 'B': s = kMonths[f.mon]; break;
      case 'c':
        s = py_strftime("%a %b %e %H:%M:%S %Y", t);
        break;
      case 'C': s = num(f.year / 100, 2, flag, '0'); break;
      case 'd': s = num(f.mday, 2, flag, '0'); break;
      case 'D': s = py_strftime("%m/%d/%y", t); break;
      case 'e': s = num(f.mday, 2, flag, ' '); break;
      case 'F': s = py_strftime("%Y-%m-%d", t); break;
      case 'f': s = "000000"; break;
      case 'G': {
        int y, w;
        iso_week(f, y, w);
        s = num(y, 1, flag, '0');
        break;
      }
      case 'g': {
        int y, w;
        iso_week(f, y, w);
        s = num(y % 100, 2, flag, '0');
        break;
      }
      case 'H': s = num(f.hour, 2, flag, '0'); break;
      case 'I': s = num(h12, 2, flag, '0'); break;
      case 'j': s = num(f.yday + 1, 3, flag, '0'); break;
      case 'k': s = num(f.hour, 2, flag, ' '); break;
      case 'l': s = num(h12, 2, flag, ' '); break;
      case 'm': s = num(f.mon + 1, 2, flag, '0'); break;
      case 'M': s = num(f.min, 2, flag, '0'); break;
      case 'n': s = "\n"; break;
      case 'p': s = f.hour < 12 ? "AM" : "PM"; break;
      case 'P': s = f.hour < 12 ? "am" : "pm"; break;
      case 'r': s = py_strftime("%I:%M:%S %p", t); break;
      case 'R': s = py_strftime("%H:%M", t); break;
      case 'S': s = num(f.sec, 2, flag, '0'); break;
      case 't': s = "\t"; break;
      case 'T': s = py_strftime("%H:%M:%S", t); break;
      case 'u': s = num(f.wday == 0 ? 7 : f.wday, 1, flag, '0'); break;
      case 'U': s = num((f.yday + 7 - f.wday) / 7, 2, flag, '0'); break;
      case 'V': {
        int y, w;
        iso_week(f, y, w);
        s = num(w, 2, flag, '0');
        break;
      }
      case 'w': s = num(f.wday, 1, flag, '0'); break;
      case 'W': s = num((f.yday + 7 - (f.wday + 6) % 7) / 7, 2, flag, '0'); break;
      case 'x': s = py_strftime("%m/%d/%y", t); break;
      case 'X': s = py_strftime("%H:%M:%S", t); break;
      case 'y': s = num(f.year % 100, 2, flag, '0'); break;
      case 'Y': s = num(f.year, 1, flag, '0'); break;
      case 'z':
      case 'Z': s = ""; break;  // naive datetime: no zone
      case '%': s = "%"; break;
      default: s = fmt.substr(start, i - start + 1); break;  // glibc copies unknown conversions
    }
    if (flag == '^')
      for (char& ch : s) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    out += s;
  }
  return out;
}

std::tm local_now() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm t{};
  localtime_r(&now, &t);
  return t;
}

}  // namespace mmfp4::jinja
