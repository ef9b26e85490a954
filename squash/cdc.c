// SPDX-License-Identifier: MIT
/*
 * FastCDC content-defined chunking: the cut-point search (cdc_cut), its
 * parameter check, and a streaming splitter over a file descriptor. The
 * format rules (gear table, masks, warm-up) are described in cdc.h and must
 * never change; the speed comes from a branch-light inner loop that keeps
 * the hash in a register and tests one mask per region.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cdc.h"
#include "../fetcher/util/util.h"

/* splitmix64 seeded with 0x6764726f6f74 ("gdroot"), outputs 1..256. */
const uint64_t cdc_gear[256] = {
	0xa213115b535ad8b4ULL, 0x2ef701d4feda9e6dULL, 0xdcf0264b9aaf7e6cULL,
	0x785926f6e8f61647ULL, 0xd7011b9c44011f02ULL, 0x405b456152f7803cULL,
	0xf08bfca250e69dc9ULL, 0x370a3ade14f83a51ULL, 0x74ad4bdd7ab5686eULL,
	0x6baf7a473cc64fc4ULL, 0x39ad21b292c31fadULL, 0xa4d91884794b49a2ULL,
	0x755053f95f31c4a4ULL, 0x06767381b3b949a8ULL, 0x5cb8f4848ec08080ULL,
	0xc362511676373619ULL, 0xd3c68e417184e4a0ULL, 0x5f01ba99e09338feULL,
	0x8d56b3199804688eULL, 0xf64b4df3c5391a0aULL, 0x42c0b1a1bc7f2656ULL,
	0x2165de09972cc05dULL, 0xf5bde0d63919f787ULL, 0x82912108cd5fbf1dULL,
	0xa57290894f482eb2ULL, 0x5654287fcd0f2a04ULL, 0xac3f1fa4fe086d3aULL,
	0xff4518dc4d7ce3ddULL, 0xc568ba4790881866ULL, 0xfffdfbdd4e13bd45ULL,
	0xe416fb15f9aaa84eULL, 0x14995cde7b165e1fULL, 0x60368762132a37d1ULL,
	0xb5758b1335ae2813ULL, 0xdfdce051ae9625ecULL, 0x616bac7a30191545ULL,
	0x7b621c35175fc985ULL, 0x24e27163a9dcfa59ULL, 0x55c1d2648538c2f2ULL,
	0x095c2c613db4dca1ULL, 0xc1636fd00cf75a7eULL, 0x1fbdfcf96db1d8e6ULL,
	0xdd7dc86be94f966fULL, 0xc5bedb2c0c91c75aULL, 0xd4e111a8ae0b8b4bULL,
	0xf2a3c1dc401382d5ULL, 0xe8c6288cb724918dULL, 0x2bcd882b30f0879eULL,
	0x142ed9a3fc9febc3ULL, 0x79559d550071c525ULL, 0x2f3341907f2d16a0ULL,
	0x59e9752566fa1440ULL, 0xffd9fafb02790e2bULL, 0xc0616d0e01747c10ULL,
	0x5d1a8ac912f2d035ULL, 0xddabdc73f8ae5ca7ULL, 0xe8babe72d7d5ea84ULL,
	0xa4ac50d70075c7a8ULL, 0xa58b48976564a2e6ULL, 0xf7c49a783f1e92efULL,
	0x07a11ea9ada65221ULL, 0x44311a7d7381ff8eULL, 0x210c8032ed538735ULL,
	0xe4d938b9e8b8d58cULL, 0x83919a5a4506adecULL, 0xbb9d85767cc933ebULL,
	0x7fec665e7f2424ceULL, 0x1994a2c0b4f46aa9ULL, 0x32cb8744fcb40653ULL,
	0x02ddc6bad636c48cULL, 0x36874e87e0239443ULL, 0xd0ca8a03808bfc9cULL,
	0xff77a6d5231907bbULL, 0xaeae7b0028d026feULL, 0x6213a2ba4ea8e676ULL,
	0xb125aa0e53d1224bULL, 0x865208b2d3ba0047ULL, 0x71f934eded536dc2ULL,
	0xf456d5470f9ab64eULL, 0x3d5cd06a81350a5bULL, 0xfe6d8679145c0550ULL,
	0xe25a6bba5a2688abULL, 0x30e85c100659de10ULL, 0x2390a766696e0e7bULL,
	0xce75cc5528cdd6f0ULL, 0x75be86f36e3aa721ULL, 0x8f34b28fe2240217ULL,
	0x2d22cbaf1b80e442ULL, 0x38e7afc6e15ffd11ULL, 0x8985c262d2889e51ULL,
	0xef4b982e19d6a1e6ULL, 0x330978577acff17fULL, 0x855b29c53b616d5aULL,
	0x4501cba61060c37bULL, 0x08e68aeefcb00e0aULL, 0x5bae48828637f729ULL,
	0x6dcad215e301bd5bULL, 0x81b1fd81b41825e2ULL, 0x61a94dd0b6aa506eULL,
	0x8cafabdda35057baULL, 0x7a3b84f2811d0ce0ULL, 0x642834573f4a027fULL,
	0x89949a9357c83e23ULL, 0x09e052aa801b4fc9ULL, 0x80c95ea1f970af7dULL,
	0x6ee60f9c3288b03dULL, 0xe3015f48d80843f2ULL, 0x5607cb1e5e65bfc1ULL,
	0x403a83705d883384ULL, 0x8767c16a7d53f9ffULL, 0xde7bb35be022fd1dULL,
	0xcf3703c11568ef87ULL, 0x229cc5b9559e9138ULL, 0x9176c0bfb6c1858aULL,
	0xfe32a006355528ffULL, 0x7eef40dbfeb155f2ULL, 0x27bb728b00c8bd2eULL,
	0xb51b1fef63d42513ULL, 0xafef7c183198d993ULL, 0x2cdeb448db04204eULL,
	0x77b20ec2ddc26612ULL, 0x692e119635df6464ULL, 0xf4d776b2e0d24c38ULL,
	0xb1c60c98bacba212ULL, 0xbef8099953aeb7ceULL, 0x24cc5403fa104d0bULL,
	0x0db66c8f782c2210ULL, 0x8281c0a849499aa0ULL, 0xc31698c8340c89a4ULL,
	0x5e29b2f05526fb8cULL, 0x2c942683bda7b59bULL, 0xb17b411523d41850ULL,
	0xf189a3eec835179bULL, 0xbc5aaa5ab5aea1c6ULL, 0x92ae112ebad65880ULL,
	0x766f8a7a68926194ULL, 0x630055bc5d198e9bULL, 0xcf8ec0479ed2f545ULL,
	0xcedfdb7770bc81aaULL, 0x405244ca5c5da098ULL, 0x6ab6c7cbace147b1ULL,
	0x2730b120240c799eULL, 0x3d896bfdb047bf6dULL, 0xd0ac3d93d7770032ULL,
	0xe98007e123088981ULL, 0xca0116b4aeb5f138ULL, 0xef95f2b1a0f053b1ULL,
	0xc4f87a444282d49cULL, 0x8f1369817decbfecULL, 0xaa8d16045d2ebd5cULL,
	0xde94f204ee59064fULL, 0xdabae5f07b327119ULL, 0x6246a4b44a694dbfULL,
	0x8a4bd7aa171c87adULL, 0x3fbd41bf6032611cULL, 0x1b31dace4aae3e59ULL,
	0xf1ae08bab05abfe0ULL, 0xdf049716ee14e09aULL, 0x5df4e4ff6917cbb8ULL,
	0x642189b7c9b3ed2eULL, 0x58555f726f2456ccULL, 0xa8e47b3b6bdf25e0ULL,
	0xd6e45350defd1767ULL, 0xc41f1c885517a732ULL, 0x78162e307a961dd8ULL,
	0xe1a6487483feaa6cULL, 0xc84d1fbd556d72e2ULL, 0xab6864260c6c1b85ULL,
	0x388ae364ab201310ULL, 0x135d045f46d22404ULL, 0xf8610c09d8b179c1ULL,
	0xe77aed1c739998e0ULL, 0xe5680ee445981edcULL, 0x269afef5b390f891ULL,
	0x1bfa406c72a3de2eULL, 0x22b5771729a1c6c8ULL, 0xb2951b64667d28a1ULL,
	0x5507bec4f3a51eb8ULL, 0x883a1eeca515276eULL, 0x6c34a14302273f9eULL,
	0xc77a8371c26bc265ULL, 0x4640021ff58c9067ULL, 0xe94d014599669d3eULL,
	0x25f6e96a83566257ULL, 0xf1c5f4db4e00d28cULL, 0x3f900f66743c1111ULL,
	0x237c76ac5d7866d1ULL, 0x44c171405e308d72ULL, 0x5295299e517a10e2ULL,
	0xf17d2a5ceb9a5bd4ULL, 0xc115aa616f789c92ULL, 0x8e6efdc8bc00c419ULL,
	0x38aa609e33c63defULL, 0x24ccec5b013c802dULL, 0xea9eda5526e437dfULL,
	0x71af6530839e0a83ULL, 0x0bf5987aa29f70f0ULL, 0xcdec830b4bfb6ea6ULL,
	0xc1735a4c830312acULL, 0x346238968bbc11c5ULL, 0xd53f90bb0eab69b3ULL,
	0xe806c63e3c54984aULL, 0x182d2d734cfbc711ULL, 0x30b25b217b9fe741ULL,
	0xc6ac47b2be71a62aULL, 0x61c966c85809edc5ULL, 0x92b1b6497187bb26ULL,
	0x1bb883a17d97a818ULL, 0x9523d285fb6d2327ULL, 0x1719be9de8b75aa4ULL,
	0x0b52b0f19820379bULL, 0x7fa00b9b4ce9dd93ULL, 0x0eda45d654bcadd0ULL,
	0x3107c12a2b326278ULL, 0xaba324a1ec6cfbe7ULL, 0x7263f95f12fd3ec7ULL,
	0xd5b6f0a5a1945986ULL, 0xd328697431ab2973ULL, 0xe87881d12212b945ULL,
	0x230c7e436b0e18baULL, 0xd439c64f4c55d408ULL, 0x46836b77034c32a5ULL,
	0x75fabdf1a272d6a4ULL, 0x765cf46088482608ULL, 0xff733bb7f826721eULL,
	0xa943029d6433d0f7ULL, 0xfe2bda2835549782ULL, 0xcef23e8a7f533a23ULL,
	0x3f4af00d85b5769aULL, 0x2f9ee3d74fd4a0d6ULL, 0x95079f42f9ae0fa8ULL,
	0xd6dc4d3825887b2bULL, 0xebde40135789ff8aULL, 0xaeca3eb476a7f0d3ULL,
	0x9c33691501d34747ULL, 0x8481c64dd3baa90eULL, 0xbc76ee403854b438ULL,
	0x6cb144c7191a95e5ULL, 0x86ecafec45edc45eULL, 0x5fea6337fe839d94ULL,
	0xd28cc62f82b1178cULL, 0x5e98dc42066d4550ULL, 0xe21d89dee671c070ULL,
	0x61c650d0502cfaabULL, 0x8698db77cea1c7bbULL, 0x4906edca5530a8fbULL,
	0xee3e5a756b7199b7ULL, 0xb611d05b449cd86bULL, 0x418385faabb76b30ULL,
	0xb7e2ee3956939355ULL, 0x42fc7d621041feeeULL, 0xad2bca646f1de5bbULL,
	0x1845d7254587a87fULL, 0x901620cf06b81a1fULL, 0x7e67deb3e166425bULL,
	0x1bbf02fc1553602eULL,
};

static inline bool is_pow2(uint32_t x) { return x && !(x & (x - 1)); }

int cdc_params_check(const struct cdc_params *p)
{
	if (!p || p->min < CDC_WINDOW || p->min >= p->avg || p->avg >= p->max ||
	    !is_pow2(p->avg) || p->max > CDC_MAX_LIMIT)
		return -EINVAL;
	return 0;
}

/* A mask of the hash's top `bits` bits: with h = (h << 1) + g, the top bits
 * are the ones that mix all of the last 64 bytes. */
static inline uint64_t top_mask(unsigned bits) { return ~UINT64_C(0) << (64 - bits); }

/* Roll the hash over buf[i..end) and return the index just past the first
 * byte after which (h & mask) == 0, or 0 when there is none (a cut is never
 * at 0: scans start at min >= 64). */
static inline size_t gear_scan(const uint8_t *buf, size_t i, size_t end, uint64_t mask,
			       uint64_t *hp)
{
	uint64_t h = *hp;

	for (; i < end; i++) {
		h = (h << 1) + cdc_gear[buf[i]];
		if (!(h & mask))
			return i + 1;
	}
	*hp = h;
	return 0;
}

size_t cdc_cut(const struct cdc_params *p, const uint8_t *buf, size_t n, bool eof)
{
	if (n <= p->min)
		return eof ? n : 0;

	unsigned bits = (unsigned)__builtin_ctz(p->avg);
	size_t end = MIN(n, (size_t)p->max);
	size_t mid = MIN(end, (size_t)p->avg);
	uint64_t h = 0;

	/* Warm-up: after these 64 shifts h depends only on the window. */
	for (size_t i = p->min - CDC_WINDOW; i < p->min; i++)
		h = (h << 1) + cdc_gear[buf[i]];

	size_t cut = gear_scan(buf, p->min, mid, top_mask(bits + 2), &h);
	if (!cut)
		cut = gear_scan(buf, mid, end, top_mask(bits - 2), &h);
	if (cut)
		return cut;
	/* No cut: a full-size chunk, the last chunk, or not enough data yet. */
	return end == p->max || eof ? end : 0;
}

/* Fill buf[*len..cap) from fd until it is full or at end of file. */
static int fill(int fd, uint8_t *buf, size_t cap, size_t *len, bool *eof)
{
	while (*len < cap) {
		ssize_t r = read(fd, buf + *len, cap - *len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0) {
			*eof = true;
			break;
		}
		*len += (size_t)r;
	}
	return 0;
}

int cdc_split_fd(const struct cdc_params *p, int fd, cdc_chunk_fn fn, void *ud)
{
	int r = cdc_params_check(p);
	if (r < 0)
		return r;

	size_t cap = 2 * (size_t)p->max, start = 0, len = 0;
	_cleanup_free_ uint8_t *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	uint64_t off = 0;
	bool eof = false;

	for (;;) {
		/* Cut only with max bytes at hand (or at eof), so that no
		 * search is ever repeated; refill a buffer of 2 * max, which
		 * moves fewer bytes than the chunks consumed since. */
		if (len < p->max && !eof) {
			memmove(buf, buf + start, len);
			start = 0;
			r = fill(fd, buf, cap, &len, &eof);
			if (r < 0)
				return r;
			continue;
		}
		if (len == 0)
			return 0;
		size_t c = cdc_cut(p, buf + start, len, eof);
		r = fn(ud, off, buf + start, c);
		if (r)
			return r;
		start += c;
		len -= c;
		off += c;
	}
}
